// Enroll a card by presenting it: wait (long poll) for the next card a reader did not know,
// and put its number in the form. No inline script: the page's CSP allows only this file.
"use strict";
(function () {
  const button = document.getElementById("enroll");
  const input = document.getElementById("card-number");
  const status = document.getElementById("enroll-status");
  if (!button || !input || !status) return;
  let after = Number(button.dataset.after || "0");
  let waiting = false;
  async function wait() {
    waiting = true;
    button.disabled = true;
    status.textContent = button.dataset.waiting || "…";
    try {
      for (let round = 0; round < 8 && waiting; round++) {
        const response = await fetch("/cards/next-unknown?after=" + after,
                                     { credentials: "same-origin" });
        if (response.status === 429) {  // too many pages waiting at once (docs/web.md)
          status.textContent = button.dataset.busy || "…";
          return;
        }
        if (!response.ok) break;
        const body = await response.json();
        if (body.number !== null) {
          after = body.after;
          input.value = String(body.number);
          status.textContent = "✔ " + body.number + (body.door_label ? " · " + body.door_label : "");
          return;
        }
      }
      status.textContent = "";
    } finally {
      waiting = false;
      button.disabled = false;
    }
  }
  button.addEventListener("click", wait);
})();
