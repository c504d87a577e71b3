// Public pages: log in, sign up, activation (the mailed link `/activate?token=`), and password
// reset (`/forgot-password`, the mailed link `/reset-password?token=`).

import { api, ApiError, type SessionStarted } from "../api";
import type { App, Page } from "../app";
import { errorBox, field, h, mount, onSubmit, str } from "../dom";

/** Where to go after login: a same-site path from `?next=`, else the capsules page. */
function nextPath(query: URLSearchParams): string {
  const next = query.get("next");
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/capsules";
}

/** Messages for `?error=` codes the OAuth callback redirects with. */
const OAUTH_ERRORS: Record<string, string> = {
  oauth_denied: "Sign-in was cancelled at the provider.",
  invalid_state: "The sign-in attempt expired or came from another browser. Please try again.",
  oauth_failed: "The provider could not confirm your identity. Please try again.",
  no_account: "No Wrenn account is linked to that identity. Sign up first.",
  email_taken: "An account with that email already exists. Log in with your password.",
  account_disabled: "This account is disabled.",
};

function card(title: string, ...body: (Node | null)[]): HTMLElement {
  return h("section", { class: "card auth-card" }, h("h1", { tabindex: "-1" }, title), ...body);
}

function input(id: string, type: string, autocomplete: string, extra: Record<string, string | number | boolean> = {}) {
  return h("input", { id, name: id, type, autocomplete, required: true, ...extra });
}

async function landSignedIn(app: App, to: string, message: string) {
  await app.refresh();
  app.navigate(to, { replace: true });
  app.notify("success", message);
}

export const loginPage: Page = {
  title: "Log in",
  public: true,
  render(root, { app, query }) {
    if (app.me) {
      app.navigate(nextPath(query), { replace: true });
      return;
    }
    const errors = errorBox();
    const oauthError = query.get("error");
    if (oauthError) errors.show(new ApiError(0, oauthError, OAUTH_ERRORS[oauthError] ?? "Sign-in failed."));
    const form = h(
      "form",
      { id: "login-form", novalidate: false },
      errors,
      field("Email", input("email", "email", "username")),
      field("Password", input("password", "password", "current-password")),
      h("button", { type: "submit" }, "Log in"),
    );
    onSubmit(form, errors, async (data) => {
      await api.post<SessionStarted>("/v1/auth/login", { email: str(data, "email"), password: str(data, "password") });
      await landSignedIn(app, nextPath(query), "Welcome back.");
    });
    mount(
      root,
      card(
        "Log in to Wrenn",
        form,
        h("p", { class: "alt" }, h("a", { href: "/v1/auth/oauth/github?intent=login" }, "Continue with GitHub")),
        h(
          "p",
          { class: "alt" },
          h("a", { href: "/forgot-password" }, "Forgot your password?"),
          " · ",
          h("a", { href: "/signup" }, "Create an account"),
        ),
      ),
    );
  },
};

export const signupPage: Page = {
  title: "Sign up",
  public: true,
  render(root, { app }) {
    if (app.me) {
      app.navigate("/capsules", { replace: true });
      return;
    }
    const errors = errorBox();
    const form = h(
      "form",
      { id: "signup-form" },
      errors,
      field("Name", input("name", "text", "name", { maxlength: 100 })),
      field("Email", input("email", "email", "email")),
      field("Password", input("password", "password", "new-password", { minlength: 8 }), "At least 8 characters."),
      h("button", { type: "submit" }, "Create account"),
    );
    onSubmit(form, errors, async (data) => {
      const email = str(data, "email");
      const res = await api.post<{ message: string }>("/v1/auth/signup", {
        name: str(data, "name"),
        email,
        password: str(data, "password"),
      });
      mount(
        root,
        card(
          "Check your email",
          h("p", { id: "signup-done", role: "status" }, res?.message ?? "We sent you an activation link."),
          h("p", null, "The link was sent to ", h("strong", null, email), ". It is valid for 30 minutes."),
          h("p", { class: "alt" }, h("a", { href: "/login" }, "Back to log in")),
        ),
      );
      root.querySelector<HTMLElement>("h1")?.focus();
    });
    mount(
      root,
      card(
        "Create your Wrenn account",
        form,
        h("p", { class: "alt" }, h("a", { href: "/v1/auth/oauth/github?intent=signup" }, "Sign up with GitHub")),
        h("p", { class: "alt" }, "Already have an account? ", h("a", { href: "/login" }, "Log in")),
      ),
    );
  },
};

/** Tokens already sent: each is single use, so a re-render must not spend it twice. */
const spentTokens = new Set<string>();

export const activatePage: Page = {
  title: "Activate account",
  public: true,
  async render(root, { app, query, live }) {
    const token = query.get("token") ?? "";
    const errors = errorBox();
    const status = h("p", { role: "status" }, "Activating your account…");
    mount(root, card("Activate your account", status, errors));
    if (!token) {
      status.textContent = "";
      errors.show(new Error("This activation link is incomplete. Open the link from the email again."));
      return;
    }
    if (spentTokens.has(token)) return;
    spentTokens.add(token);
    // Keep the one-time token out of the history and the address bar.
    history.replaceState(null, "", "/activate");
    try {
      await api.post<SessionStarted>("/v1/auth/activate", { token });
    } catch (err) {
      if (!live()) return;
      status.textContent = "";
      errors.show(err);
      root.querySelector(".auth-card")?.append(
        h("p", { class: "alt" }, "Links expire after 30 minutes. ", h("a", { href: "/signup" }, "Sign up again"), " or ", h("a", { href: "/login" }, "log in"), "."),
      );
      return;
    }
    await landSignedIn(app, "/capsules", "Your account is active. Welcome to Wrenn!");
  },
};

export const forgotPage: Page = {
  title: "Reset password",
  public: true,
  render(root) {
    const errors = errorBox();
    const form = h(
      "form",
      { id: "forgot-form" },
      errors,
      field("Email", input("email", "email", "email")),
      h("button", { type: "submit" }, "Send reset link"),
    );
    onSubmit(form, errors, async (data) => {
      await api.post("/v1/me/password/reset", { email: str(data, "email") });
      mount(
        root,
        card(
          "Check your email",
          h("p", { role: "status" }, "If an account exists for that address, a reset link is on its way. It is valid for 15 minutes."),
          h("p", { class: "alt" }, h("a", { href: "/login" }, "Back to log in")),
        ),
      );
    });
    mount(root, card("Reset your password", form, h("p", { class: "alt" }, h("a", { href: "/login" }, "Back to log in"))));
  },
};

export const resetPage: Page = {
  title: "Choose a new password",
  public: true,
  render(root, { app, query }) {
    const token = query.get("token") ?? "";
    const errors = errorBox();
    const form = h(
      "form",
      { id: "reset-form" },
      errors,
      field("New password", input("new_password", "password", "new-password", { minlength: 8 }), "At least 8 characters."),
      field("Repeat new password", input("repeat", "password", "new-password", { minlength: 8 })),
      h("button", { type: "submit" }, "Set password"),
    );
    if (!token) errors.show(new Error("This reset link is incomplete. Open the link from the email again."));
    onSubmit(form, errors, async (data) => {
      const password = str(data, "new_password");
      if (password !== str(data, "repeat")) throw new Error("The two passwords differ.");
      await api.post("/v1/me/password/reset/confirm", { token, new_password: password });
      app.signedOut("Your password was changed. Log in with the new one.");
    });
    mount(root, card("Choose a new password", form));
  },
};
