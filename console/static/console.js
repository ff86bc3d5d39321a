/* kpool console: keeps the overview live and follows a running replay.  It
 * writes text only (textContent), never markup, and is the page's only
 * script: the Content-Security-Policy forbids inline ones. */
'use strict';

function refreshOverview(el) {
	fetch(el.dataset.live, {credentials: 'same-origin', cache: 'no-store'})
		.then(function (r) {
			if (!r.ok)
				throw new Error('HTTP ' + r.status);
			return r.json();
		})
		.then(function (doc) {
			Object.keys(doc.bindings).forEach(function (name) {
				var row = document.getElementById('b-' + name);
				var b = doc.bindings[name];
				if (!row)
					return;
				Object.keys(b).forEach(function (k) {
					var cell = row.querySelector('[data-k="' + k + '"]');
					if (cell) {
						var v = b[k];
						cell.textContent = v === null ? '-' :
							k === 'rate' ? Number(v).toFixed(1) : String(v);
					}
				});
				var state = row.querySelector('[data-k="state"]');
				if (state)
					state.className = 'state ' + b.state;
				var chart = row.nextElementSibling &&
					row.nextElementSibling.querySelector('img.chart');
				if (chart)
					chart.src = '/chart.svg?b=' + encodeURIComponent(name) +
						'&t=' + Date.now();
			});
			el.textContent = 'updated ' + new Date(doc.time_ms).toLocaleTimeString();
			el.className = '';
		})
		.catch(function (e) {
			el.textContent = 'not updated: ' + e.message;
			el.className = 'stale';
		});
}

document.addEventListener('DOMContentLoaded', function () {
	var live = document.querySelector('[data-live]');
	if (live) {
		refreshOverview(live);
		setInterval(function () { refreshOverview(live); }, 2000);
	}
	document.querySelectorAll('.state').forEach(function (s) {
		s.classList.add(s.textContent.trim());
	});
	if (document.querySelector('#replay-state[data-running]'))
		setTimeout(function () { location.reload(); }, 1500);
});
