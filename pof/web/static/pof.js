// pof: small progressive enhancements only; every page works without JavaScript.
document.addEventListener("DOMContentLoaded", () => {
  // Disable a submit button once its form is sent (searches take a few seconds).
  for (const form of document.querySelectorAll("form[enctype='multipart/form-data']")) {
    form.addEventListener("submit", () => {
      const b = form.querySelector("button[type=submit]");
      if (b) { b.disabled = true; b.textContent = "Working…"; }
    });
  }
});
