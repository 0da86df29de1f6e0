/**
 * A set that holds its members weakly and can be iterated: what llama-kv keeps of the
 * objects it must reach later (a model's contexts and adapters, the contexts to abort at
 * process exit) without keeping them alive. A member the GC collects leaves the set.
 * @internal
 */
export class IterableWeakSet<T extends object> {
    readonly #refs = new Set<WeakRef<T>>();
    readonly #collected = new FinalizationRegistry<WeakRef<T>>((ref) => this.#refs.delete(ref));

    /** Adds `value`; returns the function that removes it again. */
    add(value: T): () => void {
        const ref = new WeakRef(value);
        this.#refs.add(ref);
        this.#collected.register(value, ref, ref);
        return () => {
            this.#refs.delete(ref);
            this.#collected.unregister(ref);
        };
    }

    /** The members still alive, as they are when iteration starts. */
    *[Symbol.iterator](): IterableIterator<T> {
        for (const ref of [...this.#refs]) {
            const value = ref.deref();
            if (value !== undefined) yield value;
        }
    }

    clear(): void {
        for (const ref of this.#refs) this.#collected.unregister(ref);
        this.#refs.clear();
    }
}
