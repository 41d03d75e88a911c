// Login page: check a pasted API token with /api/v1/whoami, keep it in sessionStorage, show the role.
"use strict";

const TOKEN_KEY = "gridtwin.token";

function showStatus(text, isError) {
  const el = document.getElementById("login-status");
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

async function checkToken(token) {
  const response = await fetch("/api/v1/whoami", { headers: { Authorization: "Bearer " + token } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.detail || "token refused (HTTP " + response.status + ")");
  }
  return body;
}

async function signIn(event) {
  event.preventDefault();
  const token = document.getElementById("token").value.trim();
  if (!token) {
    showStatus("paste a token first", true);
    return;
  }
  showStatus("checking the token…", false);
  try {
    const who = await checkToken(token);
    if (who.role === "ingest") {
      throw new Error("an ingest token can only send readings; use a viewer, planner, operator or admin token");
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    showStatus("signed in as " + who.name + " (role: " + who.role + ")", false);
    document.getElementById("login-next").hidden = false;
    window.location.assign("/dashboard");
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    showStatus(err.message, true);
  }
}

document.getElementById("login-form").addEventListener("submit", signIn);
if (new URLSearchParams(window.location.search).has("expired")) {
  showStatus("your token was refused (revoked or wrong): sign in again", true);
}
