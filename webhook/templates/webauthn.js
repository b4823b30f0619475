(function () {
  "use strict";
  var form = document.getElementById("webauthn-form");
  var status = document.getElementById("webauthn-status");
  if (!form || !status) { return; }
  var button = form.querySelector("button");
  var create = form.dataset.mode === "create";
  function say(text, alert) {
    status.textContent = text;
    status.className = alert ? "alert" : "notice";
    status.setAttribute("role", alert ? "alert" : "status");
    status.hidden = false;
  }
  function refused(err) {
    var name = err && err.name;
    if (name === "NotAllowedError") {
      return "The browser refused, or the time to answer ran out. Try again, and touch or unlock your key when asked.";
    }
    if (name === "InvalidStateError") {
      return create ? "This key is already registered. Use another key, or sign in with this one."
                    : "This key is not registered. Use a key you registered here, or a recovery code.";
    }
    if (name === "SecurityError") {
      return "The browser refused: this page's address does not belong to the site the key is for. Tell the administrator.";
    }
    if (name === "AbortError") {
      return "The request was cancelled. Try again.";
    }
    return "The browser refused (" + (name || "unknown error") + "). Try again, or choose another way to verify.";
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var pkc = window.PublicKeyCredential;
    if (!pkc || !navigator.credentials || !pkc.parseCreationOptionsFromJSON || !pkc.parseRequestOptionsFromJSON) {
      say("This browser cannot use passkeys or security keys. Use a current browser, or choose another way to verify.", true);
      return;
    }
    var options;
    try {
      options = JSON.parse(form.dataset.options);
    } catch (e) {
      say("This page is damaged. Reload it and try again.", true);
      return;
    }
    button.disabled = true;
    say(create ? "Follow your browser's prompt to register your key." : "Follow your browser's prompt to use your key.", false);
    var pending = create
      ? navigator.credentials.create({ publicKey: pkc.parseCreationOptionsFromJSON(options) })
      : navigator.credentials.get({ publicKey: pkc.parseRequestOptionsFromJSON(options) });
    pending.then(function (credential) {
      form.elements.credential.value = JSON.stringify(credential.toJSON());
      say(create ? "Saving your key." : "Checking your key.", false);
      form.submit();
    }, function (err) {
      button.disabled = false;
      say(refused(err), true);
    });
  });
})();
