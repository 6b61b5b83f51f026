import { timingSafeEqual } from 'node:crypto';
import { ConfigError } from '@ballast/config';
import { BallastError, type HandlerContext, invalidArgument } from '@ballast/grpc-kit';
import { nameProblem } from './validation.js';

/**
 * Who may change a model: reads are open to all; writes (versions, aliases, promotion,
 * policy) only to the team that owns the model, as MLflow's users keep asking for.
 *
 * Teams prove who they are with a token in `x-ballast-team-token`, kept apart from
 * `authorization` so that it composes with the platform-wide BALLAST_AUTH_TOKEN. With no
 * team tokens configured the registry is open (local use) and the history records the
 * `x-ballast-actor` header, or "anonymous".
 */
export const TEAM_TOKEN_HEADER = 'x-ballast-team-token';
export const ACTOR_HEADER = 'x-ballast-actor';

export interface Caller {
  /** Recorded in the history: `team` or `team/actor` when teams are configured. */
  actor: string;
  /** The authenticated team, when teams are configured. */
  team: string | undefined;
}

const TEAM_TOKENS = 'BALLAST_REGISTRY_TEAM_TOKENS';

/**
 * Parses BALLAST_REGISTRY_TEAM_TOKENS: `team=token,team=token`. Team names follow the rule
 * CreateModel applies to owner_team (nameProblem), so every configured team can own models;
 * a bad entry is a ConfigError naming the team (never the token), and the service does not start.
 */
export function parseTeamTokens(value: string | undefined): Map<string, string> | undefined {
  if (!value?.trim()) return undefined;
  const teams = new Map<string, string>();
  const problems: string[] = [];
  for (const entry of value.split(',')) {
    const at = entry.indexOf('=');
    const team = entry.slice(0, at).trim();
    const token = entry.slice(at + 1).trim();
    if (at < 1 || !team || token.length < 16) {
      problems.push(
        `expected team=token pairs separated by commas, tokens of 16+ characters; got an entry for ${JSON.stringify(team || entry.slice(0, 20))}`,
      );
      continue;
    }
    const problem = nameProblem(team);
    if (problem)
      problems.push(
        `team ${JSON.stringify(team)} is not a team name CreateModel accepts as owner_team: ${problem}`,
      );
    else if (teams.has(team)) problems.push(`team ${JSON.stringify(team)} is listed twice`);
    else if ([...teams.values()].includes(token))
      problems.push(`team ${JSON.stringify(team)} has the same token as another team`);
    teams.set(team, token);
  }
  if (problems.length > 0)
    throw new ConfigError(problems.map((message) => ({ variable: TEAM_TOKENS, message })));
  return teams;
}

export class TeamAuth {
  constructor(private readonly teams: Map<string, string> | undefined) {}

  /** The caller of a read, or of a write when teams are not configured. */
  identify(ctx: HandlerContext): Caller {
    const actor = header(ctx, ACTOR_HEADER)?.slice(0, 128);
    if (!this.teams) return { actor: actor || 'anonymous', team: undefined };
    const team = this.team(ctx);
    return { actor: team ? (actor ? `${team}/${actor}` : team) : actor || 'anonymous', team };
  }

  /**
   * The caller of a write to something `ownerTeam` owns (or, for an artifact, any team).
   * UNAUTHENTICATED without a known team token, PERMISSION_DENIED for another team's model.
   */
  authorize(ctx: HandlerContext, ownerTeam: string | undefined, what: string): Caller {
    const caller = this.identify(ctx);
    if (!this.teams) return caller;
    if (!caller.team)
      throw new BallastError(
        'unauthenticated',
        `${what} needs a team token in the ${TEAM_TOKEN_HEADER} header (reads do not)`,
      );
    if (ownerTeam !== undefined && caller.team !== ownerTeam)
      throw new BallastError(
        'permission_denied',
        `${what}: team ${caller.team} may not change what team ${ownerTeam} owns`,
      );
    return caller;
  }

  /** Creating a model: the owner must be the caller's own team. */
  authorizeOwner(ctx: HandlerContext, ownerTeam: string): Caller {
    const caller = this.authorize(ctx, undefined, `creating a model for team ${ownerTeam}`);
    if (caller.team !== undefined && caller.team !== ownerTeam)
      throw invalidArgument('owner_team', `must be your own team (${caller.team}), got ${ownerTeam}`);
    return caller;
  }

  private team(ctx: HandlerContext): string | undefined {
    const presented = header(ctx, TEAM_TOKEN_HEADER);
    if (!presented || !this.teams) return undefined;
    const given = Buffer.from(presented);
    for (const [team, token] of this.teams) {
      const expected = Buffer.from(token);
      // Constant time, so a token cannot be guessed byte by byte from response times.
      if (given.length === expected.length && timingSafeEqual(given, expected)) return team;
    }
    return undefined;
  }
}

function header(ctx: HandlerContext, name: string): string | undefined {
  const value = ctx.requestMetadata.get(name)[0];
  return typeof value === 'string' && value.trim() ? value.trim() : undefined;
}
