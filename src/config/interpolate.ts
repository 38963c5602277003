import { parse as parseYamlScalar } from "yaml";

export interface InterpolationProblem {
  path: string;
  message: string;
}

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/;

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
      const out = node.replace(VAR, (_m, name: string, fallback: string | undefined) => {
        const value = env(name);
        if (value !== undefined && value !== "") {
          if (/PASS|SECRET|KEY|TOKEN/i.test(name)) secrets.push(value);
          return value;
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
