/**
 * Which methods a path answers to, for a 405 with `Allow` (RFC 9110 section 15.5.6)
 * when a known path is asked with another method. Hono answers such a request with
 * its not-found handler, so the app's routes are matched here by their patterns.
 */
export interface RouteEntry {
  method: string;
  path: string;
}

/** A Hono path pattern as a whole-path RegExp: `:name` is one segment, `:name{re}` is re. */
export function patternRegExp(path: string): RegExp {
  let source = "";
  for (let i = 0; i < path.length;) {
    if (path[i] === ":") {
      const name = /^:[A-Za-z0-9_]+/.exec(path.slice(i))![0];
      i += name.length;
      if (path[i] === "{") {
        let depth = 0, j = i;
        for (; j < path.length; j++) {
          if (path[j] === "{") depth++;
          else if (path[j] === "}" && --depth === 0) break;
        }
        source += `(${path.slice(i + 1, j)})`;
        i = j + 1;
      } else {
        source += "([^/]+)";
      }
    } else if (path[i] === "*") {
      source += ".*";
      i++;
    } else {
      source += path[i].replace(/[.+?^$()[\]\\|]/g, "\\$&");
      i++;
    }
  }
  return new RegExp(`^${source.replace(/\/$/, "")}/?$`);
}

/** The methods (sorted, HEAD with GET) whose routes match `path`; middleware ("ALL") is not a route. */
export function allowedMethods(routes: readonly RouteEntry[], path: string): string[] {
  const methods = new Set<string>();
  for (const route of routes) {
    if (route.method === "ALL") continue;
    if (patternRegExp(route.path).test(path)) methods.add(route.method);
  }
  if (methods.has("GET")) methods.add("HEAD");
  return [...methods].sort();
}
