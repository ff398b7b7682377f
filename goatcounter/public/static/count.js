/*
 * count.js for goatcounter (Python), a self-hosted server that speaks GoatCounter's API.
 * It sends the same requests as GoatCounter's own script, so pages need no change:
 *
 *   <script data-goatcounter="https://stats.example.com/count"
 *           async src="//stats.example.com/count.js"></script>
 */
;(function(win, doc) {
	'use strict'

	var gc = win.goatcounter = win.goatcounter || {}
	var enc = encodeURIComponent

	// The names a page may set in data-goatcounter-settings; anything else is ignored.
	var SETTINGS = ['no_onload', 'no_events', 'allow_local', 'allow_frame',
	                'path', 'title', 'referrer', 'event']

	// Hosts that can't be a public site: counting them would only add noise.
	var LOCAL = /(localhost$|^127\.|^10\.|^172\.(1[6-9]|2[0-9]|3[0-1])\.|^192\.168\.|^0\.0\.0\.0$)/

	var script_tag = function() { return doc.querySelector('script[data-goatcounter]') }

	var warn = function(msg) {
		if (win.console && console.warn)
			console.warn('goatcounter: ' + msg)
	}

	var read_settings = function() {
		var tag = script_tag()
		var raw = tag && tag.dataset.goatcounterSettings
		if (!raw)
			return
		var given
		try {
			given = JSON.parse(raw)
		} catch (err) {
			console.error('invalid JSON in data-goatcounter-settings: ' + err)
			return
		}
		for (var name in given)
			if (SETTINGS.indexOf(name) !== -1)
				gc[name] = given[name]
	}

	// Headless browsers leave these traces; the server can't see them, so the
	// script reports them and the hit is logged as a bot instead of counted.
	var bot_code = function() {
		if (win.callPhantom || win._phantom || win.phantom)
			return 150
		if (win.__nightmare)
			return 151
		if (doc.__selenium_unwrapped || doc.__webdriver_evaluate || doc.__driver_evaluate)
			return 152
		if (navigator.webdriver)
			return 153
		return 0
	}

	// A canonical link on this host (www. or not) names the page better than the
	// address bar, which may carry tracking junk or an alias.
	var page_path = function() {
		var loc = location
		var link = doc.querySelector('link[rel="canonical"][href]')
		if (link) {
			var a = doc.createElement('a')
			a.href = link.href
			var bare = function(host) { return host.replace(/^www\./, '') }
			if (bare(a.hostname) === bare(location.hostname))
				loc = a
		}
		return (loc.pathname + loc.search) || '/'
	}

	var endpoint = function() {
		var tag = script_tag()
		return (tag && tag.dataset.goatcounter) ? tag.dataset.goatcounter : gc.endpoint
	}

	// Empty strings, null, undefined and false are left out; 0 is a real value (b=0).
	var query_string = function(data) {
		var pairs = []
		for (var k in data) {
			var v = data[k]
			if (v !== '' && v !== null && v !== undefined && v !== false)
				pairs.push(enc(k) + '=' + enc(v))
		}
		return '?' + pairs.join('&')
	}

	var when_ready = function(fn) {
		if (doc.body === null)
			doc.addEventListener('DOMContentLoaded', function() { fn() }, false)
		else
			fn()
	}

	// The parameters of one hit, in the order the server has always seen them:
	// p, r, t, e, s, b, q, then ns (rnd is added by url()).
	gc.get_data = function(vars) {
		vars = vars || {}
		var given = function(name) { return vars[name] === undefined ? gc[name] : vars[name] }
		var data = {
			p: given('path'),
			r: given('referrer'),
			t: given('title'),
			e: !!(vars.event || gc.event),
			s: win.screen.width,
			b: bot_code(),
			q: location.search
		}

		// path, referrer and title may be functions: they get the value that would
		// have been sent and return the one to send.
		var fallback = {
			r: function() { return doc.referrer },
			t: function() { return doc.title },
			p: page_path
		}
		var callbacks = {}
		for (var k in fallback) {
			if (typeof data[k] === 'function')
				callbacks[k] = data[k]
			if (data[k] === null || data[k] === undefined || typeof data[k] === 'function')
				data[k] = fallback[k]()
		}
		if (vars.no_session)
			data.ns = typeof vars.no_session === 'function' ? vars.no_session(false) : vars.no_session
		for (var c in callbacks)
			data[c] = callbacks[c](data[c])
		return data
	}

	// Why this page view should not be counted, or false to count it.
	gc.filter = function() {
		if ('visibilityState' in doc && doc.visibilityState === 'prerender')
			return 'visibilityState'
		if (!gc.allow_frame && location !== parent.location)
			return 'frame'
		if (!gc.allow_local && LOCAL.test(location.hostname))
			return 'localhost'
		if (!gc.allow_local && location.protocol === 'file:')
			return 'localfile'
		if (skipped())
			return 'disabled with #toggle-goatcounter'
		return false
	}

	// Storage can be switched off or throw (sandboxed frames, strict privacy
	// settings); that must not stop the count.
	var skipped = function() {
		try {
			return !!win.localStorage && localStorage.getItem('skipgc') === 't'
		} catch (err) {
			return false
		}
	}

	gc.url = function(vars) {
		var data = gc.get_data(vars || {})
		if (data.p === null)
			return
		// Some caches ignore Cache-Control; a random value makes every URL new.
		data.rnd = Math.random().toString(36).substr(2, 5)
		var base = endpoint()
		if (!base)
			return warn('no endpoint found')
		return base + query_string(data)
	}

	gc.count = function(vars) {
		var reason = gc.filter()
		if (reason)
			return warn('not counting because of: ' + reason)
		var url = gc.url(vars)
		if (!url)
			return warn('not counting because path callback returned null')

		var sent = false
		if (navigator && navigator.sendBeacon)
			sent = navigator.sendBeacon(url)
		if (!sent)
			send_image(url)
	}

	// A Content-Security-Policy may refuse the beacon but still allow images.
	var send_image = function(url) {
		var img = doc.createElement('img')
		img.src = url
		img.loading = 'eager'
		img.setAttribute('alt', '')
		img.setAttribute('aria-hidden', 'true')
		// Out of the flow so that the page doesn't shift while it loads.
		var style = img.style
		style.position = 'absolute'
		style.bottom = '0px'
		style.width = '1px'
		style.height = '1px'
		img.addEventListener('load', function() {
			if (img.parentNode)
				img.parentNode.removeChild(img)
		}, false)
		doc.body.appendChild(img)
	}

	// The raw (still encoded) value of a query parameter; the name is matched
	// ignoring case.
	gc.get_query = function(name) {
		var want = name.toLowerCase() + '='
		var parts = location.search.substr(1).split('&')
		for (var i = 0; i < parts.length; i++)
			if (parts[i].toLowerCase().indexOf(want) === 0)
				return parts[i].substr(name.length + 1)
	}

	var TRUE_WORDS = ['1', 't', 'true']

	var count_click = function(el) {
		var d = el.dataset
		return function() {
			gc.count({
				event: true,
				path: d.goatcounterClick || el.name || el.id || '',
				title: d.goatcounterTitle || el.title || (el.innerHTML || '').substr(0, 200) || '',
				referrer: d.goatcounterReferrer || d.goatcounterReferral || '',
				no_session: TRUE_WORDS.indexOf((d.goatcounterNoSession || '').toLowerCase()) !== -1
			})
		}
	}

	// Safe to call again after adding elements: bound ones are marked and skipped.
	gc.bind_events = function() {
		if (!doc.querySelectorAll)
			return
		var els = doc.querySelectorAll('*[data-goatcounter-click]')
		for (var i = 0; i < els.length; i++) {
			var el = els[i]
			if (el.dataset.goatcounterBound)
				continue
			var handler = count_click(el)
			el.addEventListener('click', handler, false)
			el.addEventListener('auxclick', handler, false)
			el.dataset.goatcounterBound = 'true'
		}
	}

	// Show the page's visitor count as a frame or an image from <endpoint>er/<path>.
	gc.visit_count = function(opt) {
		when_ready(function() {
			opt = opt || {}
			var type = opt.type = opt.type || 'html'
			opt.append = opt.append || 'body'
			opt.path = opt.path || page_path()
			opt.attr = opt.attr || {width: '200', height: opt.no_branding ? '60' : '80'}

			var src = endpoint() + 'er/' + enc(opt.path) + '.' + enc(type) + '?'
			if (opt.no_branding) src += '&no_branding=1'
			if (opt.style) src += '&style=' + enc(opt.style)
			if (opt.start) src += '&start=' + enc(opt.start)
			if (opt.end) src += '&end=' + enc(opt.end)
			opt.attr.src = src

			var tag = {html: 'iframe', png: 'img', svg: 'img'}[type]
			if (!tag)
				return warn('visit_count: unknown type: ' + type)
			if (type === 'html') {
				opt.attr.frameborder = '0'
				opt.attr.scrolling = 'no'
			}
			var el = doc.createElement(tag)
			for (var a in opt.attr)
				el.setAttribute(a, opt.attr[a])
			var parent_el = doc.querySelector(opt.append)
			if (!parent_el)
				return warn('visit_count: element to append to not found: ' + opt.append)
			parent_el.appendChild(el)
		})
	}

	// Visiting a page with #toggle-goatcounter turns counting off (or back on) in
	// this browser, so site owners can leave their own visits out.
	var toggle = function() {
		if (localStorage.getItem('skipgc') === 't') {
			localStorage.removeItem('skipgc')
			alert('GoatCounter: your visits are counted again in this browser.')
		} else {
			localStorage.setItem('skipgc', 't')
			alert('GoatCounter: your visits are no longer counted in this browser (open '
				+ location + ' again to undo).')
		}
	}

	// A prerendered or background tab may never be seen: count it when it is.
	var count_when_visible = function() {
		if (!('visibilityState' in doc) || doc.visibilityState === 'visible')
			return gc.count()
		var on_change = function() {
			if (doc.visibilityState !== 'visible')
				return
			doc.removeEventListener('visibilitychange', on_change)
			gc.count()
		}
		doc.addEventListener('visibilitychange', on_change)
	}

	read_settings()
	if (location.hash === '#toggle-goatcounter')
		toggle()
	if (!gc.no_onload)
		when_ready(function() {
			count_when_visible()
			if (!gc.no_events)
				gc.bind_events()
		})
})(window, document);
