// The dashboard's only script: an element with data-refresh="URL" has its content replaced, every
// data-every-s seconds, with the fragment the server renders at URL (the job list's rows). A session
// that ended (the fetch was sent to the sign-in page) reloads the page, which then asks to sign in.
"use strict";
document.querySelectorAll("[data-refresh]").forEach((element) => {
  const everyMs = 1000 * Number(element.dataset.everyS || 5);
  setInterval(async () => {
    const response = await fetch(element.dataset.refresh, { credentials: "same-origin" });
    if (response.redirected) { window.location.reload(); return; }
    if (response.ok) { element.innerHTML = await response.text(); }
  }, everyMs);
});
