// A minimal Reflect metadata API (the subset of the reflect-metadata proposal that
// tsyringe uses). @peculiar/x509 depends on tsyringe, which throws at load time unless
// Reflect.getMetadata exists; x509 only decorates classes with @injectable() and emits
// no design-time metadata, so a small WeakMap store is all that is needed. Installed only
// when no polyfill is present, so a real `import 'reflect-metadata'` elsewhere wins.
// This module must be evaluated before @peculiar/x509: import it through x509-lib.ts.

type Store = Map<unknown, unknown>;
const stores = new WeakMap<object, Map<string | symbol | undefined, Store>>();

function ownStore(target: object, property: string | symbol | undefined, create: boolean): Store | undefined {
  let byProperty = stores.get(target);
  if (!byProperty) {
    if (!create) return undefined;
    byProperty = new Map();
    stores.set(target, byProperty);
  }
  let store = byProperty.get(property);
  if (!store && create) {
    store = new Map();
    byProperty.set(property, store);
  }
  return store;
}

const R = Reflect as unknown as Record<string, unknown>;
if (typeof R.getMetadata !== 'function') {
  const getOwnMetadata = (key: unknown, target: object, property?: string | symbol) =>
    ownStore(target, property, false)?.get(key);
  const hasOwnMetadata = (key: unknown, target: object, property?: string | symbol) =>
    ownStore(target, property, false)?.has(key) ?? false;
  // Like the proposal: walk the prototype chain (a subclass sees its parent's metadata).
  const getMetadata = (key: unknown, target: object, property?: string | symbol): unknown => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
      if (hasOwnMetadata(key, t, property)) return getOwnMetadata(key, t, property);
    }
    return undefined;
  };
  const hasMetadata = (key: unknown, target: object, property?: string | symbol): boolean => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
      if (hasOwnMetadata(key, t, property)) return true;
    }
    return false;
  };
  const defineMetadata = (key: unknown, value: unknown, target: object, property?: string | symbol) => {
    ownStore(target, property, true)!.set(key, value);
  };
  const metadata = (key: unknown, value: unknown) => (target: object, property?: string | symbol) =>
    defineMetadata(key, value, target, property);
  Object.assign(R, { getOwnMetadata, hasOwnMetadata, getMetadata, hasMetadata, defineMetadata, metadata });
}

export {};
