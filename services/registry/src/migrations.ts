import type { Migration } from '@ballast/storage';

/**
 * The registry service's schema, forward-only: append new migrations, never edit an applied
 * one (storage refuses a changed migration by its checksum). The first tables arrive
 * with the registry service's domain RPCs.
 */
export const migrations: Migration[] = [];
