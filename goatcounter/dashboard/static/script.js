// The one script of the pages. Every page works without it; it only smooths the edges.
(function() {
    'use strict';

    // A form marked data-submit-once can't be sent twice by a double click (a second
    // sign-in attempt would count against the rate limit for nothing).
    document.addEventListener('submit', function(event) {
        var form = event.target;
        if (!form.hasAttribute('data-submit-once'))
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
})();
