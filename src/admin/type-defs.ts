/** The admin API's SDL (`/admin/graphql`): a schema of its own, never merged with the tenant API's. */
export const ADMIN_TYPE_DEFS = /* GraphQL */ `
  enum TenantStatus {
    active
    suspended
  }

  type Tenant {
    id: String!
    status: TenantStatus!
    "The plan a key gets when none is named at its creation."
    plan: String
    createdAt: String!
    updatedAt: String!
  }

  type TenantPage {
    items: [Tenant!]!
    "Pass as 'after' for the next page; null on the last page."
    cursor: String
  }

  type ApiKey {
    tenant: String!
    keyId: String!
    plan: String!
    "First 12 hex digits of the key's sha256 (the key itself is never shown again)."
    fingerprint: String!
    createdAt: String!
    isRevoked: Boolean!
    "A rotated key's end of overlap (ISO-8601); null: no end."
    expiresAt: String
    "The key's last request that reached a decision (ISO-8601, within about a second: flushed by each API process every second); null: none seen."
    lastUsedAt: String
  }

  type CreatedKey {
    "The plain key: shown this once, stored only as its sha256."
    key: String!
    apiKey: ApiKey!
  }

  type AdminToken {
    id: String!
    isRevoked: Boolean!
    createdAt: String!
  }

  type CreatedAdminToken {
    "The plain token: shown this once, stored only as its sha256."
    token: String!
    adminToken: AdminToken!
  }

  type AuditEntry {
    id: String!
    "The admin token that made the change."
    tokenId: String!
    action: String!
    target: String!
    "JSON before the change (null: created)."
    before: String
    "JSON after the change."
    after: String
    at: String!
  }

  type AuditPage {
    items: [AuditEntry!]!
    cursor: String
  }

  type BillingPeriod {
    unit: String!
    anchorDay: Int!
    timeZone: String!
    lengthSeconds: Int
  }

  input BillingPeriodInput {
    unit: String!
    anchorDay: Int!
    timeZone: String!
    lengthSeconds: Int
  }

  type PriceTier {
    upToUnits: Float
    unitPriceMicros: Float!
  }

  input PriceTierInput {
    upToUnits: Float
    unitPriceMicros: Float!
  }

  type Price {
    currency: String!
    baseFeeMicros: Float!
    includedUnits: Float!
    tiers: [PriceTier!]!
  }

  input PriceInput {
    currency: String!
    baseFeeMicros: Float!
    includedUnits: Float!
    tiers: [PriceTierInput!]!
  }

  "An account as read back: the webhook secret is write-only (only whether one is set)."
  type Account {
    tenant: String!
    billingPeriod: BillingPeriod!
    price: Price!
    webhookUrl: String
    hasWebhookSecret: Boolean!
  }

  input AccountInput {
    tenant: String!
    billingPeriod: BillingPeriodInput!
    price: PriceInput!
    webhookUrl: String
    webhookSecret: String
  }

  input CorrectionInput {
    "Your id of this correction: a retry with the same id is the same correction."
    id: String!
    tenant: String!
    "An instant (ISO-8601) in the billing period to correct."
    at: String!
    "Cost units: > 0 a debit, < 0 a credit."
    units: Int!
    reason: String!
  }

  type Correction {
    eventId: String!
    periodStart: String!
    "False when a correction with this id was already made (nothing moved now)."
    isNew: Boolean!
  }

  type Plan {
    id: String!
    version: Int!
    "The plan as JSON (empty when the stored body does not parse)."
    body: String!
    "Why the stored plan does not validate (the API serves its last good version); null when it does."
    problem: String
    appliedAt: String
  }

  type PlanChange {
    "e.g. limits[burst].algorithm.capacity; empty: the whole plan (none stored)."
    path: String!
    before: String
    after: String
  }

  type PlanDiff {
    id: String!
    storedVersion: Int
    newVersion: Int!
    changes: [PlanChange!]!
  }

  type RolloutHour {
    "Start of the UTC hour (ISO-8601)."
    hour: String!
    wouldDeny: Float!
  }

  "What one changed limit of the new version would have denied while it ran in shadow."
  type RolloutLimit {
    limit: String!
    "The id its shadow copy runs under (its own state, never the enforced limit's)."
    shadowId: String!
    "Requests it would have denied (exact: counted from every decision's shadow denials)."
    wouldDeny: Float!
    hours: [RolloutHour!]!
  }

  "A new plan version's changed limits run in shadow beside the enforced version."
  type Rollout {
    plan: String!
    fromVersion: Int!
    toVersion: Int!
    "running, expired (its time is up: shadow limits no longer served), promoted or aborted."
    status: String!
    startedAt: String!
    endsAt: String!
    endedAt: String
    limits: [RolloutLimit!]!
    "Requests the enforced version refused (denied or deferred) that the new version would have admitted (removed or relaxed limits)."
    wouldAdmit: Float!
    "The limits the new version removes (they run in no shadow), with the refusals they caused that the new version would have admitted."
    removedLimits: [RemovedLimit!]!
  }

  "A limit of the enforced version that the new version removes."
  type RemovedLimit {
    limit: String!
    "Requests it refused (alone or with other removed or relaxed limits) that the new version would have admitted: exact, counted from every decision."
    wouldAdmit: Float!
  }

  "A limit as an API instance serves it."
  type ServedLimit {
    id: String!
    "hard, soft, defer or shadow (a running rollout's copies of the new version's changed limits are shadow)."
    mode: String!
  }

  "A plan as the API instance answering serves it now: the enforced version, plus a running rollout's shadow limits."
  type ServedPlan {
    id: String!
    version: Int!
    limits: [ServedLimit!]!
    "The version of the running rollout this instance serves beside it (its shadow limits, its counts); null when none."
    rolloutVersion: Int
  }

  "Ledger vs admitted counters of one tenant's billing period: drift = admitted - ledgered - inFlight (0 when exact)."
  type TenantAudit {
    tenant: String!
    periodStart: String!
    "audited, or unsettled (the stream moved during every snapshot; try again)."
    status: String!
    admitted: Float
    ledgered: Float
    inFlight: Float
    drift: Float
    duplicateEvents: Float
  }

  type Query {
    "The tenants with an account, sorted (what 'tollgate audit' without --tenant walks)."
    accountTenants: [String!]!
    "Audits the tenant's billing period holding 'at' (ISO-8601; default now), in its account's calendar."
    audit(tenant: String!, at: String): TenantAudit!
    plans: [Plan!]!
    "Every version applied through the admin API, oldest first."
    planVersions(id: String!): [Plan!]!
    "What applying this plan (JSON) would change against the stored version; every validation problem listed otherwise."
    planDiff(plan: String!): PlanDiff!
    "The id of the admin token making this call."
    whoami: String!
    "The plan's latest shadow rollout and what its limits would have denied; null when it never had one."
    rollout(plan: String!): Rollout
    "The plan as the instance answering serves it now (tenants never see a rollout's shadow limits); null when it has none."
    servedPlan(id: String!): ServedPlan
    tenants(status: TenantStatus, plan: String, first: Int = 50, after: String): TenantPage!
    tenant(id: String!): Tenant
    keys(tenant: String!): [ApiKey!]!
    account(tenant: String!): Account
    adminTokens: [AdminToken!]!
    auditLog(tokenId: String, action: String, target: String, first: Int = 50, after: String): AuditPage!
  }

  type Mutation {
    "Stores a new version of a plan (JSON; its version must be greater than the stored one); every problem listed with its path."
    applyPlan(plan: String!): Plan!
    "Runs the changed limits of a new version (JSON) in shadow beside the enforced one for forSeconds (1..2592000)."
    startRollout(plan: String!, forSeconds: Int!): Rollout!
    "The rollout's version becomes the enforced one (a plan apply); the rollout ends."
    promoteRollout(plan: String!): Plan!
    "The rollout's shadow limits are removed; the enforced version stays."
    abortRollout(plan: String!): Rollout!
    createTenant(id: String!, plan: String): Tenant!
    "Every key of the tenant is refused at once (403 TENANT_SUSPENDED); nothing is metered."
    suspendTenant(id: String!): Tenant!
    resumeTenant(id: String!): Tenant!
    createKey(tenant: String!, keyId: String!, plan: String): CreatedKey!
    revokeKey(tenant: String!, keyId: String!): ApiKey!
    "A new key of the same plan; the old one keeps working for overlapSeconds, then stops."
    rotateKey(tenant: String!, keyId: String!, newKeyId: String!, overlapSeconds: Int!): CreatedKey!
    "Creates or changes an account and ensures its account workflow."
    putAccount(input: AccountInput!): Account!
    "A debit or credit of a tenant's billing period (correction.v1)."
    postCorrection(input: CorrectionInput!): Correction!
    createAdminToken(id: String!): CreatedAdminToken!
    revokeAdminToken(id: String!): AdminToken!
  }
`;
