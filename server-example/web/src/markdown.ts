// Model output to safe HTML: `marked` renders the markdown, DOMPurify removes everything
// that could run script (event handler attributes, `javascript:` and other non-allowed
// URLs, <script>, <iframe>, <object>, forms). The page's Content-Security-Policy is the
// second wall: even markup that slipped through could not run inline script.
import DOMPurify from "dompurify";
import { Marked } from "marked";

/** `&`, `<`, `>`, `"` and `'` as entities: text that must stay text inside HTML. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  async: false,
  renderer: {
    // Raw HTML in model output is shown as the text it is, never parsed as markup: a
    // reply about HTML reads as written, and the sanitizer below never even sees an event
    // handler attribute (Chromium reports one it parses as a CSP violation).
    html({ text }) {
      return escapeHtml(text);
    },
  },
});

/** Where links may point: web and mail addresses only (no `javascript:`, `data:`, `vbscript:`). */
const SAFE_URL = /^(?:https?:|mailto:|#|\/(?!\/))/i;

const purify = DOMPurify(window);
purify.addHook("afterSanitizeAttributes", (node) => {
  if (node instanceof HTMLAnchorElement) {
    const href = node.getAttribute("href");
    if (href !== null && !SAFE_URL.test(href.trim())) node.removeAttribute("href");
    // Links leave the page without handing it to the target.
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** Rendered, sanitized HTML of markdown text. */
export function renderMarkdown(text: string): string {
  const html = marked.parse(text, { async: false });
  return purify.sanitize(html, {
    USE_PROFILES: { html: true },
    // Images are left out: a model's image could beacon to any host.
    FORBID_TAGS: ["img", "style", "form", "input", "button", "textarea", "select", "svg", "math"],
    FORBID_ATTR: ["style"],
  });
}
