/**
 * Meaning of meta context queries (spec, "Metadata querying" and the `base:`
 * namespace). A context name is `namespace:leaf`.
 */

/** `ns:` with an empty leaf: a wildcard for every context of that namespace. */
function isNamespaceWildcard(query: string): boolean {
  return query.indexOf(':') === query.length - 1 && query.length > 1;
}

/**
 * NBD_OPT_LIST_META_CONTEXT: no query lists everything; `ns:` lists the
 * namespace; any other query lists the context of exactly that name. Unknown
 * namespaces and names match nothing, which is not an error. Result in the
 * export's order, each context once.
 */
export function contextsListedBy(available: readonly string[], queries: readonly string[]): string[] {
  if (queries.length === 0) return [...available];
  return available.filter((context) =>
    queries.some((query) => (isNamespaceWildcard(query) ? context.startsWith(query) : context === query)),
  );
}

/**
 * NBD_OPT_SET_META_CONTEXT: only exact names select; the spec says the
 * `base:` wildcard MUST be ignored here (and an empty leaf SHOULD NOT select
 * in any namespace). Each context gets a stable id: its position in the
 * export's list plus one, so 0 never names a selected context.
 */
export function contextsSelectedBy(available: readonly string[], queries: readonly string[]): Map<number, string> {
  const selected = new Map<number, string>();
  available.forEach((context, index) => {
    if (queries.includes(context)) selected.set(index + 1, context);
  });
  return selected;
}

/** Namespaces that are not experimental (`x-*`): the spec's own and the registered third-party ones. */
const REGISTERED_NAMESPACES: readonly string[] = ['base', 'nbd-server', 'qemu'];

/**
 * Why a server may not offer `name` as a meta context, or undefined when it
 * may (spec, "Metadata querying"): `namespace:leaf` with a leaf, and a
 * namespace that is `base`, `nbd-server`, a registered one, or `x-*`.
 */
export function contextNameProblem(name: string): string | undefined {
  const colon = name.indexOf(':');
  if (colon <= 0) return 'a context name is namespace:leaf';
  if (colon === name.length - 1) return 'a context name needs a leaf after the namespace';
  const namespace = name.slice(0, colon);
  if (!REGISTERED_NAMESPACES.includes(namespace) && !namespace.startsWith('x-')) {
    return `namespace ${namespace} is neither one of ${REGISTERED_NAMESPACES.join(', ')} nor experimental (x-…)`;
  }
  return undefined;
}
