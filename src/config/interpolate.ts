import { parse as parseYamlScalar } from "yaml";

export interface InterpolationProblem {
  path: string;
  message: string;
}

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/;

/**
 * Where a URL template's userinfo lies (`scheme://USERINFO@host`), in template
 * offsets: from after `://` to the last `@` that comes before the first `/`, `?` or
 * `#` outside a ${...} reference. Null when the string is no URL or has no userinfo.
 */
export function userinfoSpan(template: string): { start: number; end: number } | null {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(template);
  if (!scheme) return null;
  let at = -1;
  for (let i = scheme[0].length; i < template.length; i++) {
    if (template.startsWith("${", i)) {
      const close = template.indexOf("}", i);
      if (close === -1) break;
      i = close;
      continue;
    }
    const c = template[i];
    if (c === "/" || c === "?" || c === "#") break;
    if (c === "@") at = i;
  }
  return at === -1 ? null : { start: scheme[0].length, end: at };
}

/**
 * Replaces ${VAR} and ${VAR:-default} in every string of a parsed YAML tree.
 * A value that was one whole ${...} is read again as a YAML scalar, so that
 * `worker_concurrency: ${WORKERS:-2}` yields the number 2.
 */
export function interpolate(
  tree: unknown,
  env: (name: string) => string | undefined,
): { value: unknown; problems: InterpolationProblem[]; secrets: string[] } {
  const problems: InterpolationProblem[] = [];
  const secrets: string[] = [];
  const walk = (node: unknown, path: string): unknown => {
    if (typeof node === "string") {
      const userinfo = userinfoSpan(node);
      const out = node.replace(VAR, (m, name: string, fallback: string | undefined, at: number) => {
        const value = env(name);
        if (value !== undefined && value !== "") {
          const inUserinfo = userinfo !== null && at >= userinfo.start &&
            at + m.length <= userinfo.end;
          // Whatever fills a URL's user or password is a credential, whatever its name.
          if (/PASS|SECRET|KEY|TOKEN/i.test(name) || inUserinfo) secrets.push(value);
          // `@ / # : %` in a password would end the userinfo early: encode it (RFC 3986 3.2.1).
          return inUserinfo ? encodeURIComponent(value) : value;
        }
        if (fallback !== undefined) return fallback;
        problems.push({
          path,
          message:
            `environment variable ${name} is not set (use \${${name}:-default} for a default)`,
        });
        return "";
      });
      if (WHOLE.test(node) && out !== "") {
        try {
          const scalar = parseYamlScalar(out);
          if (typeof scalar === "number" || typeof scalar === "boolean") return scalar;
        } catch { /* keep the string */ }
      }
      return out;
    }
    if (Array.isArray(node)) return node.map((v, i) => walk(v, `${path}[${i}]`));
    if (node && typeof node === "object") {
      return Object.fromEntries(
        Object.entries(node).map(([k, v]) => [k, walk(v, path ? `${path}.${k}` : k)]),
      );
    }
    return node;
  };
  return { value: walk(tree, ""), problems, secrets };
}
