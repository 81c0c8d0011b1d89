// The customer page's "Notify me" panel: a push subscription and an email address, sent as the
// ticket's contact (PUT /v1/tickets/{id}/contact; DELETE when nothing is left), so that the
// server can say "almost your turn" and "it's your turn" while the page sleeps. What was given
// is remembered per ticket in this browser, so a reload shows it.
import { t } from "./i18n.js";
import { PushRefused, pushSupported, subscribe, unsubscribe } from "./pushsub.js";
import { byId, read, remove, write } from "./ui.js";

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function remembered(text) {
  try {
    const found = JSON.parse(text || "{}");
    return found && typeof found === "object" ? found : {};
  } catch {
    return {};
  }
}

export class NotifyMe {
  constructor(client) {
    this.client = client;
    this.ticket = null;
    this.contact = {};
    byId("notify-push").addEventListener("change", (event) => this.togglePush(event.target.checked));
    byId("notify-email-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveEmail(byId("notify-email").value.trim());
    });
  }

  storageKey() {
    return `vqueue:contact:${this.ticket.ticket_id}`;
  }

  /** Show the panel for `ticket` ({ticket_id, token}), with what this browser gave before.
   * Called on every position update: the controls are filled only for a new ticket, so an
   * update never undoes what the customer is doing. */
  show(ticket) {
    const fresh = this.ticket?.ticket_id !== ticket.ticket_id;
    this.ticket = ticket; // the token may be new (a transfer)
    if (fresh) {
      this.contact = remembered(read(localStorage, this.storageKey()));
      this.say("");
      this.renderPush();
      byId("notify-email").value = this.contact.email ?? "";
    }
    byId("notify-me").hidden = false;
  }

  renderPush() {
    const blocked = pushSupported() && Notification.permission === "denied";
    byId("notify-push-row").hidden = !pushSupported() || blocked;
    byId("notify-push").checked = Boolean(this.contact.push);
    const hint = !pushSupported() ? "unsupported" : blocked ? "blocked" : "pushHint";
    byId("notify-push-hint").textContent = t(`customer.notify.${hint}`);
  }

  hide() {
    byId("notify-me").hidden = true;
  }

  say(text, bad = false) {
    const node = byId("notify-status");
    node.textContent = text;
    node.classList.toggle("error", bad);
  }

  async togglePush(on) {
    const box = byId("notify-push");
    box.disabled = true;
    this.say(t("customer.notify.saving"));
    try {
      if (on) {
        await this.save({ ...this.contact, push: await subscribe(this.client) });
      } else {
        const { push: _dropped, ...rest } = this.contact;
        await this.save(rest);
        await unsubscribe();
      }
      this.say(t(on ? "customer.notify.pushOn" : "customer.notify.pushOff"));
    } catch (error) {
      box.checked = !on;
      const denied = error instanceof PushRefused;
      this.say(t(denied ? "customer.notify.denied" : "customer.notify.failed"), true);
      if (denied) this.renderPush();
    } finally {
      box.disabled = false;
    }
  }

  async saveEmail(email) {
    const input = byId("notify-email");
    if (email && !EMAIL_RE.test(email)) {
      input.setAttribute("aria-invalid", "true");
      this.say(t("customer.notify.badEmail"), true);
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    const { email: _old, ...rest } = this.contact;
    try {
      await this.save(email ? { ...rest, email } : rest);
      this.say(t(email ? "customer.notify.emailOn" : "customer.notify.emailOff", { email }));
    } catch {
      this.say(t("customer.notify.failed"), true);
    }
  }

  /** Send the whole contact (PUT replaces it), or forget it when nothing is left. */
  async save(contact) {
    const { ticket_id: id, token } = this.ticket;
    if (contact.push || contact.email) await this.client.setContact(id, token, contact);
    else await this.client.removeContact(id, token);
    this.contact = contact;
    write(localStorage, this.storageKey(), JSON.stringify(contact));
  }

  /** Ticked at join: subscribe as if the box were ticked here. */
  enablePush() {
    if (!this.ticket || this.contact.push) return;
    byId("notify-push").checked = true;
    return this.togglePush(true);
  }

  /** The ticket moved to another queue (new id and token): its contact moved with it. */
  follow(ticket) {
    if (!this.ticket) return;
    const contact = this.contact;
    remove(localStorage, this.storageKey());
    this.ticket = { ticket_id: ticket.ticket_id, token: ticket.token };
    write(localStorage, this.storageKey(), JSON.stringify(contact));
  }

  /** The ticket is over: the server dropped its contact; forget it here too. */
  forget() {
    if (this.ticket) remove(localStorage, this.storageKey());
    this.ticket = null;
    this.contact = {};
    this.hide();
  }
}
