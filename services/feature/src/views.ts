import { invalidArgument, notFound } from '@ballast/grpc-kit';
import { type CompiledView, compileView } from './definition.js';
import type { FeatureStore, StoredView } from './store.js';

/**
 * Resolves (view name, version) to a compiled view. Versions are immutable, so compiled
 * views are cached for good; "latest version of a name" is cached for `latestTtlMs`
 * (an apply in this process refreshes it at once; other replicas see it within the TTL).
 */
export class Views {
  private readonly byVersion = new Map<string, { view: CompiledView; createdAt: Date }>();
  private readonly latest = new Map<string, { version: string; until: number }>();

  constructor(
    private readonly store: FeatureStore,
    private readonly latestTtlMs = 1_000,
  ) {}

  compiled(stored: StoredView): { view: CompiledView; createdAt: Date } {
    let entry = this.byVersion.get(stored.version);
    if (!entry) {
      entry = { view: compileView(stored.definition), createdAt: stored.createdAt };
      this.byVersion.set(stored.version, entry);
    }
    return entry;
  }

  noteLatest(name: string, version: string): void {
    this.latest.set(name, { version, until: Date.now() + this.latestTtlMs });
  }

  async resolveEntry(
    name: string,
    version: string,
    field = 'view',
  ): Promise<{ view: CompiledView; createdAt: Date }> {
    if (!name) throw invalidArgument(field, 'is required');
    const wanted = version || this.freshLatest(name);
    const cached = wanted ? this.byVersion.get(wanted) : undefined;
    if (cached && cached.view.name === name) return cached;
    const stored = await this.store.getView(name, version);
    if (!stored)
      throw notFound(
        version ? `feature view ${name} has no version ${version}` : `feature view ${name} not found`,
      );
    if (!version) this.noteLatest(name, stored.version);
    return this.compiled(stored);
  }

  async resolve(name: string, version: string, field = 'view'): Promise<CompiledView> {
    return (await this.resolveEntry(name, version, field)).view;
  }

  private freshLatest(name: string): string | undefined {
    const entry = this.latest.get(name);
    return entry && entry.until > Date.now() ? entry.version : undefined;
  }
}
