// The staff console's one dialog: what a requeue (place), a transfer (queue, place) or a
// removal (reason) needs before the call is made.
import { t } from "./i18n.js";
import { byId, h } from "./ui.js";

const FIELDS = {
  requeue: ["position"],
  transfer: ["queue", "position"],
  remove: ["reason"],
};

export class TicketDialog {
  /** `act(work)` runs a staff call and resolves to whether it succeeded (staff.js). */
  constructor(act) {
    this.act = act;
    this.node = byId("ticket-dialog");
    this.submit = null;
    this.mode = null;
    byId("dialog-form").addEventListener("submit", (event) => this._submit(event));
    byId("dialog-cancel").addEventListener("click", () => this.node.close());
  }

  /** Fill the transfer target list with the venue's other queues (when the server lists them). */
  async loadQueues(own, list) {
    try {
      const answer = await list();
      const list = Array.isArray(answer) ? answer : (answer?.queues ?? []);
      const slugs = list.map((q) => q.queue).filter((q) => q && q !== own);
      byId("venue-queues").replaceChildren(...slugs.map((slug) => h("option", { value: slug })));
    } catch {
      // No queue list (older server, or an admin-only route): the field still takes a slug.
    }
  }

  open(mode, ticket, submit) {
    this.mode = mode;
    this.submit = submit;
    const fields = FIELDS[mode];
    byId("dialog-title").textContent = t(`staff.dialog.${mode}`, { number: ticket.number });
    byId("dialog-ok").textContent = t(`staff.dialog.ok.${mode}`);
    for (const name of ["queue", "position", "reason"]) {
      byId(`dialog-${name}-row`).hidden = !fields.includes(name);
      byId(`dialog-${name}`).value = "";
    }
    const hint = mode === "requeue" ? "staff.dialog.positionFirst" : "staff.dialog.positionLast";
    byId("dialog-position-hint").textContent = t(hint);
    byId("dialog-error").textContent = "";
    this.node.showModal();
    byId(`dialog-${fields[0]}`).focus();
  }

  async _submit(event) {
    event.preventDefault();
    const queue = byId("dialog-queue").value.trim();
    const position = Number.parseInt(byId("dialog-position").value, 10);
    const values = {
      queue,
      position: Number.isInteger(position) && position >= 1 ? position : null,
      reason: byId("dialog-reason").value.trim(),
    };
    if (this.mode === "transfer" && !queue) {
      byId("dialog-error").textContent = t("staff.dialog.needQueue");
      return;
    }
    const submit = this.submit;
    this.node.close();
    await this.act(() => submit(values));
  }
}
