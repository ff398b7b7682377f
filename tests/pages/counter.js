// Once count.js is there, ask it for the counter of /counted in each format.
(function wait() {
    if (!window.goatcounter || !window.goatcounter.visit_count)
        return setTimeout(wait, 20)
    goatcounter.visit_count({append: '#as-html', type: 'html', path: '/counted'})
    goatcounter.visit_count({append: '#as-svg', type: 'svg', path: '/counted'})
    goatcounter.visit_count({append: '#as-png', type: 'png', path: '/counted', no_branding: true})
    goatcounter.visit_count({append: '#as-total', type: 'html', path: 'TOTAL'})
})()
