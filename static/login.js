/* The dashboard's login: asks for the server's token once and trades it for a session cookie.
 *
 * EventSource cannot send an Authorization header, so the token is not kept by the page:
 * POST /api/login answers with an HttpOnly, SameSite=Strict cookie that the browser sends
 * with every same-origin request, the event stream included, and no script can read.
 * The dialog opens by itself when reading needs the token, and whenever a request is
 * answered 401 (window.dashboardLogin.require).
 */
(function () {
  'use strict';

  function $(id) { return document.getElementById(id); }

  var session = { token_required: false, read_requires_token: false, authenticated: false };

  function setMessage(text) { $('login-message').textContent = text; }

  function open(reason) {
    var dialog = $('login');
    if (!dialog || dialog.open) return;
    if (reason) $('login-reason').textContent = reason;
    setMessage('');
    dialog.showModal();
    $('login-token').focus();
  }

  function request(method, path, body) {
    return fetch(path, {
      method: method,
      headers: body === undefined ? { Accept: 'application/json' }
        : { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store'
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        return { status: res.status, body: data || {} };
      });
    });
  }

  function renderButton() {
    var button = $('login-button');
    button.hidden = !session.token_required;
    button.textContent = session.authenticated ? 'Log out' : 'Log in';
  }

  function submit(evt) {
    evt.preventDefault();
    var token = $('login-token').value;
    if (!token) { setMessage('Enter the token.'); return; }
    setMessage('Checking…');
    request('POST', '/api/login', { token: token }).then(function (res) {
      if (res.status === 200) {
        $('login-token').value = '';
        setMessage('Logged in.');
        window.location.reload(); // every request and the live stream now carry the cookie
      } else {
        setMessage(res.body.error || ('HTTP ' + res.status));
      }
    }, function () { setMessage('The server cannot be reached.'); });
  }

  function start() {
    $('login-form').addEventListener('submit', submit);
    $('login-cancel').addEventListener('click', function () { $('login').close(); });
    $('login-button').addEventListener('click', function () {
      if (!session.authenticated) { open(); return; }
      request('POST', '/api/logout', {}).then(function () { window.location.reload(); });
    });
    request('GET', '/api/login').then(function (res) {
      if (res.status !== 200) return;
      session = res.body;
      renderButton();
      if (session.read_requires_token && !session.authenticated) {
        open('This server shows its data only with its token (ANOMALY_API_TOKEN).');
      }
    }, function () { /* the dashboard reports an unreachable server */ });
  }

  window.dashboardLogin = {
    require: function () {
      open(session.read_requires_token ? undefined
        : 'Changing anything on this server needs its token (ANOMALY_API_TOKEN).');
    },
    get session() { return session; }
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
