// aigiqa study: posting one answer (a rating or a choice) of the subject's page. Retries a network
// or server error with the same body (so the same submission id: a retry can never store a second
// answer); a 409 (another tab moved on) takes the server's state. Resolves to
// { state } on success or after a 409, or { error } (the server's message) for another 4xx.
"use strict";
window.aigiqaPost = async function (token, endpoint, body, csrf, onRetry) {
  const base = "/api/s/" + encodeURIComponent(token);
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await fetch(base + "/" + endpoint, {
        method: "POST", body, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      });
      if (r.ok) return { state: (await r.json()).state };
      if (r.status === 409) return { state: await (await fetch(base + "/state")).json() };
      if (r.status < 500) {
        const err = await r.json().catch(() => ({}));
        const detail = Array.isArray(err.detail)
          ? err.detail.map((e) => e.msg).join("; ") : err.detail;
        return { error: detail || "error " + r.status };
      }
    } catch (err) { /* network error: retry below with the same submission id */ }
    onRetry();
    await new Promise((ok) => setTimeout(ok, Math.min(8000, 500 * 2 ** attempt)));
  }
};
