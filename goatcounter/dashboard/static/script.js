// The one script of the pages. Every page works without it; it only smooths the edges.
(function() {
    'use strict';

    // A form marked data-submit-once can't be sent twice by a double click (a second
    // sign-in attempt would count against the rate limit for nothing).
    document.addEventListener('submit', function(event) {
        var form = event.target;
        // Not sent after all (a question answered "no"): nothing to guard.
        if (!form.hasAttribute('data-submit-once') || event.defaultPrevented)
            return;
        if (form.dataset.sent) {
            event.preventDefault();
            return;
        }
        form.dataset.sent = 'true';
        form.querySelectorAll('button[type="submit"]').forEach(function(button) {
            // Disabled after the submit has gone: a disabled button sends nothing.
            setTimeout(function() { button.disabled = true; }, 0);
        });
    });

    // Coming back to a page from the browser's history keeps nothing half-sent.
    window.addEventListener('pageshow', function() {
        document.querySelectorAll('form[data-sent]').forEach(function(form) {
            delete form.dataset.sent;
            form.querySelectorAll('button[type="submit"]').forEach(function(b) { b.disabled = false; });
        });
    });

    // Settings pages ------------------------------------------------------------------
    // Buttons that only work with the script are in the page hidden; show them.
    function reveal(selector, setup) {
        document.querySelectorAll(selector).forEach(function(el) {
            el.hidden = false;
            setup(el);
        });
    }

    // Copy the text of an input (data-copy names its id) or of the nearest
    // data-copy-source.
    reveal('[data-copy]', function(button) {
        button.addEventListener('click', function() {
            var source = button.dataset.copy ? document.getElementById(button.dataset.copy)
                : button.parentElement.querySelector('[data-copy-source]');
            if (!source)
                return;
            var text = ('value' in source ? source.value : source.textContent).replace(/\s+/g, '');
            var done = function() {
                button.textContent = 'Copied';
                setTimeout(function() { button.textContent = 'Copy'; }, 2000);
            };
            if (navigator.clipboard && window.isSecureContext)
                navigator.clipboard.writeText(text).then(done);
            else if (source.select) {
                source.select();
                document.execCommand('copy');
                done();
            }
        });
    });

    // Add this browser's address to the ignored ones.
    reveal('[data-add-ip]', function(button) {
        button.addEventListener('click', function() {
            var input = document.getElementById(button.dataset.target);
            var ip = button.dataset.addIp;
            var have = input.value.split(/[\s,]+/).filter(Boolean);
            if (have.indexOf(ip) === -1)
                have.push(ip);
            input.value = have.join(', ');
            input.focus();
        });
    });

    // A new random secret for the dashboard's secret link.
    reveal('[data-random-secret]', function(button) {
        button.addEventListener('click', function() {
            var bytes = new Uint8Array(20), chars = 'abcdefghijklmnopqrstuvwxyz0123456789', out = '';
            crypto.getRandomValues(bytes);
            bytes.forEach(function(b) { out += chars[b % chars.length]; });
            document.getElementById(button.dataset.randomSecret).value = out.slice(0, 24);
        });
    });

    // The browser's own time zone, as the zone field takes it.
    reveal('[data-browser-zone]', function(button) {
        button.addEventListener('click', function() {
            var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
            var input = document.getElementById(button.dataset.browserZone);
            var shown = zone.replace(/_/g, ' ');
            var match = Array.prototype.find.call(document.querySelectorAll('#zone-list option'),
                function(o) { return o.value === shown || o.value.endsWith(': ' + shown); });
            input.value = match ? match.value : zone;
        });
    });

    // Show a field only while a select has a value: data-show-when="select-id=value".
    document.querySelectorAll('[data-show-when]').forEach(function(field) {
        var parts = field.dataset.showWhen.split('='), select = document.getElementById(parts[0]);
        if (!select)
            return;
        var update = function() { field.hidden = select.value !== parts[1]; };
        select.addEventListener('change', update);
        update();
    });

    // Forms that undo something ask first.
    document.addEventListener('submit', function(event) {
        var form = event.target;
        if (form.dataset.confirm && !window.confirm(form.dataset.confirm))
            event.preventDefault();
    }, true);

    // An import in progress: its numbers, fetched every second until it is done.
    document.querySelectorAll('[data-import-progress]').forEach(function(box) {
        var url = box.dataset.importProgress;
        var tick = function() {
            fetch(url, {headers: {'Accept': 'application/json'}, credentials: 'same-origin'})
                .then(function(r) { return r.ok ? r.json() : null; })
                .then(function(state) {
                    if (!state)
                        return setTimeout(tick, 3000);
                    Object.keys(state).forEach(function(key) {
                        box.querySelectorAll('[data-field="' + key + '"]').forEach(function(el) {
                            if (el.tagName === 'PROGRESS')
                                el.value = state[key];
                            else
                                el.textContent = state[key];
                        });
                    });
                    var bar = box.querySelector('progress');
                    if (bar && state.total)
                        bar.max = state.total;
                    if (state.state === 'done' || state.state === 'failed')
                        window.location.reload();
                    else
                        setTimeout(tick, 1000);
                })
                .catch(function() { setTimeout(tick, 3000); });
        };
        setTimeout(tick, 1000);
    });

    // A file over the import's size limit is refused before it is sent.
    document.querySelectorAll('input[type="file"][data-max-bytes]').forEach(function(input) {
        input.addEventListener('change', function() {
            var file = input.files && input.files[0], max = Number(input.dataset.maxBytes);
            input.setCustomValidity(file && file.size > max
                ? 'This file is larger than ' + Math.floor(max / 1048576) + ' MiB, the most this server takes.'
                : '');
            input.reportValidity();
        });
    });
    // The live log (/live): new entries are asked for every half second while the page
    // is in view, and put in place by arrival time. A short poll, not a stream: an open
    // stream would hold one of the server's few worker processes for as long as the
    // page stays open.
    var POLL_MS = 500;

    var live = function(list) {
        var status = document.querySelector('[data-live-status]');
        var empty = document.querySelector('[data-live-empty]');
        var filter = document.querySelector('[data-live-filter]');
        var most = parseInt(list.dataset.most, 10) || 100;
        var decision = list.dataset.decision || '';
        // The newest id the server had: it answers with nothing while that is so.
        var newest = parseInt(list.dataset.newest, 10) || 0;
        var seen = {};
        var timer = null;
        var failed = false;

        list.querySelectorAll('li[data-id]').forEach(function(li) { seen[li.dataset.id] = true; });
        if (filter)
            filter.querySelectorAll('[data-no-script]').forEach(function(el) { el.hidden = true; });

        var text = function(tag, cls, value) {
            var el = document.createElement(tag);
            if (cls)
                el.className = cls;
            el.textContent = value;
            return el;
        };

        // The same markup as the page's own rows (templates/live.html).
        var row = function(e) {
            var li = document.createElement('li');
            li.className = 'live-entry live-new';
            li.dataset.id = e.id;
            li.dataset.at = e.at;
            var time = text('time', '', e.shown_time);
            time.setAttribute('datetime', e.time);
            time.title = e.shown_date;
            li.appendChild(time);
            li.appendChild(text('span', 'badge badge-' + e.decision, e.decision));
            var what = text('span', 'live-what', '');
            if (e.event) {
                what.appendChild(text('span', 'live-event', 'event'));
                what.appendChild(document.createTextNode(' '));
            }
            what.appendChild(text('span', 'live-path', e.path || '(no path)'));
            if (e.title) {
                what.appendChild(document.createTextNode(' '));
                what.appendChild(text('span', 'live-title', e.title));
            }
            li.appendChild(what);
            li.appendChild(text('span', 'live-endpoint', e.endpoint_name));
            if (e.reason)
                li.appendChild(text('span', 'live-reason', e.reason));
            if (e.details)
                li.appendChild(text('span', 'live-details', e.details));
            return li;
        };

        var place = function(li) {
            var at = parseFloat(li.dataset.at);
            var id = parseInt(li.dataset.id, 10);
            var next = list.firstElementChild;
            while (next) {
                var nat = parseFloat(next.dataset.at);
                if (nat < at || (nat === at && parseInt(next.dataset.id, 10) < id))
                    break;
                next = next.nextElementSibling;
            }
            list.insertBefore(li, next);
        };

        // The reply holds the newest entries, some of them shown already.
        var show = function(entries) {
            entries.forEach(function(e) {
                if (seen[e.id])
                    return;
                seen[e.id] = true;
                place(row(e));
            });
            while (list.children.length > most) {
                delete seen[list.lastElementChild.dataset.id];
                list.removeChild(list.lastElementChild);
            }
            if (empty)
                empty.hidden = list.children.length > 0;
        };

        var say = function(message) {
            if (status)
                status.textContent = message;
        };

        var schedule = function(ms) {
            clearTimeout(timer);
            timer = setTimeout(poll, ms);
        };

        var poll = function() {
            if (document.hidden)
                return;  // Asked again when the page is in view.
            var url = '/live.json?after=' + newest + (decision ? '&decision=' + encodeURIComponent(decision) : '');
            fetch(url, {credentials: 'same-origin', headers: {'Accept': 'application/json'}})
                .then(function(resp) {
                    var type = resp.headers.get('Content-Type') || '';
                    if (resp.redirected || !resp.ok || type.indexOf('application/json') !== 0)
                        throw new Error(resp.redirected ? 'signed out' : 'error ' + resp.status);
                    return resp.json();
                })
                .then(function(data) {
                    newest = data.newest;
                    show(data.entries);
                    failed = false;
                    say('Live: new entries appear as they arrive' + (decision ? ' (' + decision + ' only)' : '') + '.');
                    schedule(POLL_MS);
                })
                .catch(function(err) {
                    say('Not updating (' + err.message + '); trying again. Reload the page if this stays.');
                    // Back off while the server can't answer.
                    schedule(failed ? 5000 : 2000);
                    failed = true;
                });
        };

        var choose = function(value) {
            decision = value;
            newest = 0;
            seen = {};
            while (list.firstChild)
                list.removeChild(list.firstChild);
            var url = '/live' + (value ? '?decision=' + encodeURIComponent(value) : '');
            history.replaceState(null, '', url);
            poll();
        };

        if (filter) {
            filter.addEventListener('change', function(event) {
                if (event.target.name === 'decision')
                    choose(event.target.value);
            });
            filter.addEventListener('submit', function(event) { event.preventDefault(); });
        }
        document.addEventListener('visibilitychange', function() {
            if (!document.hidden)
                schedule(0);
        });
        schedule(0);
    };

    var list = document.querySelector('[data-live-list]');
    if (list)
        live(list);
})();

// The dashboard works without this script (every view is a link or a GET form); with
// it, views change without a full reload, and chart bars show their numbers on hover
// and keyboard focus.
(function () {
  'use strict';

  function root() { return document.querySelector('[data-dash-root]'); }

  // Chart tooltips and arrow keys -----------------------------------------------------
  function tooltip() { return document.querySelector('[data-tooltip]'); }

  function show(slot) {
    var tip = tooltip(), title = slot.querySelector('title');
    if (!tip || !title) return;
    tip.textContent = title.textContent;
    tip.hidden = false;
    var box = slot.getBoundingClientRect(), w = tip.offsetWidth;
    var left = Math.min(Math.max(4, box.left + box.width / 2 - w / 2), window.innerWidth - w - 4);
    tip.style.left = left + 'px';
    tip.style.top = Math.max(4, box.top - tip.offsetHeight - 6) + 'px';
  }

  function hide() { var tip = tooltip(); if (tip) tip.hidden = true; }

  function slotOf(el) { return el && el.closest ? el.closest('.slot') : null; }

  document.addEventListener('mouseover', function (e) { var s = slotOf(e.target); if (s) show(s); });
  document.addEventListener('mouseout', function (e) { if (slotOf(e.target)) hide(); });
  document.addEventListener('focusin', function (e) { var s = slotOf(e.target); if (s) show(s); else hide(); });

  // One tab stop per chart; the arrow keys move between its bars.
  document.addEventListener('keydown', function (e) {
    var slot = slotOf(e.target);
    if (!slot) return;
    var slots = Array.prototype.slice.call(slot.parentNode.querySelectorAll('.slot'));
    var i = slots.indexOf(slot), next = i;
    if (e.key === 'ArrowRight') next = Math.min(slots.length - 1, i + 1);
    else if (e.key === 'ArrowLeft') next = Math.max(0, i - 1);
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = slots.length - 1;
    else return;
    e.preventDefault();
    slot.setAttribute('tabindex', '-1');
    slots[next].setAttribute('tabindex', '0');
    slots[next].focus();
  });

  // Views without a full reload ------------------------------------------------------
  var pending = null;

  function load(url, push) {
    var here = root();
    if (!here) { window.location = url; return; }
    if (pending) pending.abort();
    pending = new AbortController();
    here.classList.add('is-loading');
    fetch(url, {credentials: 'same-origin', signal: pending.signal, headers: {'Accept': 'text/html'}})
      .then(function (resp) {
        if (resp.redirected || !(resp.headers.get('Content-Type') || '').startsWith('text/html')) {
          window.location = url;
          return null;
        }
        return resp.text();
      })
      .then(function (text) {
        if (text === null) return;
        var doc = new DOMParser().parseFromString(text, 'text/html');
        var fresh = doc.querySelector('[data-dash-root]');
        if (!fresh) { window.location = url; return; }
        var focused = document.activeElement && document.activeElement.name;
        here.replaceWith(fresh);
        document.title = doc.title;
        if (push) history.pushState({dash: true}, '', url);
        if (focused) {
          var again = fresh.querySelector('[name="' + focused + '"]');
          if (again) {
            again.focus();
            if (again.type === 'search') again.setSelectionRange(again.value.length, again.value.length);
          }
        }
      })
      .catch(function (err) { if (err.name !== 'AbortError') window.location = url; });
  }

  document.addEventListener('click', function (e) {
    var a = e.target.closest && e.target.closest('a[data-dash]');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    load(a.href, true);
  });

  function formURL(form) {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) { if (value !== '' || key !== 'filter') params.append(key, value); });
    return form.action.split('?')[0] + '?' + params.toString();
  }

  document.addEventListener('submit', function (e) {
    var form = e.target.closest('[data-dash-form]');
    if (!form) return;
    var start = form.elements['period-start'], end = form.elements['period-end'];
    if (start && end && start.value && end.value && start.value > end.value) {
      e.preventDefault();
      end.setCustomValidity('The end date is before the start date');
      end.reportValidity();
      return;
    }
    e.preventDefault();
    load(formURL(form), true);
  });

  var typing = null;
  document.addEventListener('input', function (e) {
    var form = e.target.closest && e.target.closest('[data-dash-form]');
    if (!form) return;
    if (e.target.setCustomValidity) e.target.setCustomValidity('');
    if (e.target.name !== 'filter') return;
    clearTimeout(typing);
    typing = setTimeout(function () { load(formURL(form), true); }, 400);
  });

  document.addEventListener('change', function (e) {
    var form = e.target.closest && e.target.closest('[data-dash-form]');
    if (form && e.target.type === 'date' && form.checkValidity()) form.requestSubmit();
  });

  window.addEventListener('popstate', function () { load(window.location.href, false); });
})();
