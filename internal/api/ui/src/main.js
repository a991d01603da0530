// The dashboard served at /ui: live charts and the key browser.

import 'uplot/dist/uPlot.min.css';
import './style.css';
import { forgetToken, hasToken } from './api.js';
import { Dashboard } from './charts.js';
import { KeyBrowser } from './keys.js';

function showTab(name) {
  for (const tab of document.querySelectorAll('[data-tab]')) {
    const on = tab.dataset.tab === name;
    tab.setAttribute('aria-selected', String(on));
    document.getElementById(tab.dataset.tab).hidden = !on;
  }
}

for (const tab of document.querySelectorAll('[data-tab]')) {
  tab.addEventListener('click', () => showTab(tab.dataset.tab));
}

const forget = document.getElementById('forget-token');
forget.hidden = !hasToken();
forget.addEventListener('click', () => {
  forgetToken();
  window.location.reload();
});
document.getElementById('auth-form').addEventListener('submit', () => {
  forget.hidden = false;
});

new Dashboard(document.getElementById('overview')).start();
new KeyBrowser(document.getElementById('keys'));
