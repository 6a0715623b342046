// Builds the page into dist/: app-<hash>.js, app-<hash>.css, index.html, their gzip (.gz)
// and brotli (.br) variants, and manifest.rs, the list server-example embeds (src/web.rs
// includes it). esbuild's output depends only on the sources and its version (pinned in
// package-lock.json), and the compressed variants only on their file and Node's zlib and
// brotli, so the committed dist/ can be drift-checked: `node build.mjs --check` rebuilds in
// memory and fails on any difference.
//
//   node build.mjs          write dist/
//   node build.mjs --check  compare with dist/, exit 1 on drift
import * as esbuild from "esbuild";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, "dist");
const check = process.argv.includes("--check");

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.tsx" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome110", "firefox110", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  entryNames: "[name]-[hash]",
  outdir: "dist",
  write: false,
  sourcemap: false,
  legalComments: "eof",
  charset: "utf8",
  logLevel: "warning",
});

/** Content type of each asset kind the bundle produces. */
const TYPES = { ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" };

/** Content type of `index.html`. */
const HTML_TYPE = "text/html; charset=utf-8";

/**
 * The content codings written next to each served file, in the server's order of preference
 * (src/web/accept_encoding.rs). Each compresses at its highest setting: the cost is paid
 * once per build, the bytes saved on every first load. Both are deterministic for a given
 * zlib and brotli (Node's own: `process.versions.zlib`, `.brotli`), which is what lets the
 * drift check compare them byte for byte.
 */
const CODINGS = [
  {
    name: "br",
    suffix: ".br",
    compress: (bytes) =>
      zlib.brotliCompressSync(bytes, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
          [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
        },
      }),
    decompress: (bytes) => zlib.brotliDecompressSync(bytes),
  },
  {
    name: "gzip",
    suffix: ".gz",
    compress: (bytes) => {
      const out = zlib.gzipSync(bytes, { level: zlib.constants.Z_BEST_COMPRESSION });
      // zlib writes no name and a zero mtime, but byte 9 of the header (RFC 1952) names the
      // operating system zlib was built for; 255 ("unknown") makes the bytes the same
      // whichever system runs the build.
      out[9] = 255;
      return out;
    },
    decompress: (bytes) => zlib.gunzipSync(bytes),
  },
];

/**
 * Writes the compressed variants of `name` into `files` and returns, per coding name, the
 * variant's file name, or null when compressing does not make the file smaller (it is then
 * served as it is). Each variant is decompressed again and compared: the server sends these
 * bytes as they are.
 */
function compressed(name, bytes) {
  const variants = {};
  for (const coding of CODINGS) {
    const out = coding.compress(bytes);
    if (!coding.decompress(out).equals(bytes)) throw new Error(`${coding.name} of ${name} does not round-trip`);
    if (out.length < bytes.length) {
      files.set(name + coding.suffix, out);
      variants[coding.name] = name + coding.suffix;
    } else {
      variants[coding.name] = null;
    }
  }
  return variants;
}

const files = new Map();
const assets = [];
for (const out of result.outputFiles) {
  const name = path.basename(out.path);
  const type = TYPES[path.extname(name)];
  if (!type) throw new Error(`unexpected output ${name}`);
  const bytes = Buffer.from(out.contents);
  files.set(name, bytes);
  assets.push({ name, type, variants: compressed(name, bytes) });
}
assets.sort((a, b) => (a.name < b.name ? -1 : 1));
const js = assets.find((a) => a.name.endsWith(".js"));
const css = assets.find((a) => a.name.endsWith(".css"));
if (!js || !css) throw new Error("the build produced no script or no stylesheet");

// No inline script or style: the Content-Security-Policy allows neither.
const index = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chatd</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/${css.name}">
<script type="module" src="/assets/${js.name}"></script>
</head>
<body>
<div id="app"></div>
</body>
</html>
`;
files.set("index.html", Buffer.from(index));
const page = { name: "index.html", type: HTML_TYPE, variants: compressed("index.html", Buffer.from(index)) };

/** The Rust expression of one embedded file (`web::EmbeddedFile`). */
const embedded = (f, indent) => {
  const variant = (file) => (file ? `Some(include_bytes!("${file}"))` : "None");
  return `EmbeddedFile {
${indent}    name: "${f.name}",
${indent}    content_type: "${f.type}",
${indent}    identity: include_bytes!("${f.name}"),
${indent}    br: ${variant(f.variants.br)},
${indent}    gzip: ${variant(f.variants.gzip)},
${indent}}`;
};

const rust = `// Generated by server-example/web/build.mjs (\`node build.mjs\`): the page's files and
// their precompressed variants, embedded in the binary. Do not edit; the drift check
// (\`node build.mjs --check\`) fails when this differs from a fresh build.

/// The page: answered on \`/\` and the page routes.
pub(crate) const INDEX_HTML: EmbeddedFile = ${embedded(page, "")};

/// The hashed assets served under \`/assets/\`.
pub(crate) const ASSETS: &[EmbeddedFile] = &[
${assets.map((a) => `    ${embedded(a, "    ")},`).join("\n")}
];
`;
files.set("manifest.rs", Buffer.from(rust));

/**
 * Why a compressed file may differ when the file it compresses does not: another zlib or
 * brotli (another Node) compressed it. Still a drift (the check is byte for byte), but the
 * message says so instead of leaving a mystery.
 */
function compressorHint(name, committedPath) {
  const coding = CODINGS.find((c) => name.endsWith(c.suffix));
  const original = coding && files.get(name.slice(0, -coding.suffix.length));
  if (!coding || !original) return "";
  try {
    if (!coding.decompress(fs.readFileSync(committedPath)).equals(original)) return "";
  } catch {
    return "";
  }
  return ` (same content, other bytes: compressed with other settings, or by another zlib/brotli than this Node's: zlib ${process.versions.zlib}, brotli ${process.versions.brotli})`;
}

if (check) {
  const problems = [];
  const present = fs.existsSync(dist) ? fs.readdirSync(dist) : [];
  for (const [name, bytes] of files) {
    const p = path.join(dist, name);
    if (!fs.existsSync(p)) problems.push(`missing: dist/${name}`);
    else if (!fs.readFileSync(p).equals(bytes)) problems.push(`differs: dist/${name}${compressorHint(name, p)}`);
  }
  for (const name of present) if (!files.has(name)) problems.push(`stale: dist/${name}`);
  if (problems.length) {
    console.error(`The committed page bundle is out of date:\n  ${problems.join("\n  ")}`);
    console.error("Rebuild it with scripts/build-web.sh and commit server-example/web/dist/.");
    process.exit(1);
  }
  console.log(`page bundle up to date (${[...files.keys()].join(", ")})`);
} else {
  fs.rmSync(dist, { recursive: true, force: true });
  fs.mkdirSync(dist);
  for (const [name, bytes] of files) fs.writeFileSync(path.join(dist, name), bytes);
  for (const [name, bytes] of files) console.log(`dist/${name}  ${bytes.length} bytes`);
}
