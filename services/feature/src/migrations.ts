import type { Migration } from '@ballast/storage';

/**
 * The feature service's schema, forward-only: append new migrations, never edit an applied
 * one (storage refuses a changed migration by its checksum). The first tables arrive
 * with the feature service's domain RPCs.
 */
export const migrations: Migration[] = [];
