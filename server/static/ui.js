// Small DOM helpers shared by the three pages.

/** The queue slug of the page: the path segment after /q/, /staff/ or /board/. */
export function pageQueue() {
  const [, slug = ""] = location.pathname.split("/").filter(Boolean);
  return decodeURIComponent(slug);
}

export function byId(id) {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`missing #${id}`);
  return node;
}

/** Show exactly one of `views` (elements), hiding the others. */
export function showOnly(views, visible) {
  for (const view of views) view.hidden = view !== visible;
}

/** Replace a node's children with elements made by `make(item)` for each item. */
export function renderList(parent, items, make) {
  parent.replaceChildren(...items.map(make));
}

/** `document.createElement` with attributes, dataset and children in one call. */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** The app is ready: reveal it (it stays hidden until translated, so no raw keys flash). */
export function reveal() {
  byId("app").hidden = false;
  document.body.removeAttribute("aria-busy");
}

// Web storage that may be full or disabled (private browsing): reads fall back to null, writes
// are skipped. The pages then work; they only forget on reload.

export function read(storage, key) {
  try {
    return storage.getItem(key);
  } catch {
    return null;
  }
}

export function write(storage, key, value) {
  try {
    storage.setItem(key, value);
  } catch {
    // Not kept: see above.
  }
}

export function remove(storage, key) {
  try {
    storage.removeItem(key);
  } catch {
    // Nothing was kept.
  }
}

export function parseJson(text) {
  try {
    return JSON.parse(text ?? "null");
  } catch {
    return null;
  }
}
