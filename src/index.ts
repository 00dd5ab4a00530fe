/**
 * tokenfuse — token budgets between an application and its LLM provider (SPEC §9).
 * Public library API: re-exports only.
 */

export type { Alert, AlertSink } from "./alerts/types.js";
export { ConfigError, isConfigError } from "./config/config-error.js";
export { defaultConfig, loadConfig, loadConfigFile } from "./config/load.js";
export type { FeatureConfig, OnExceed, ResolvedConfig, TierConfig } from "./config/types.js";
export type {
  Admission,
  BudgetReport,
  BudgetWindow,
  CostWindow,
  DecisionEvent,
  EngineEvents,
  SettleEvent,
  SettlementResult,
  SettleOptions,
  SummaryProvider,
} from "./core/engine.js";
export { ERROR_CODES, type ErrorCode, isTokenBudgetError, TokenBudgetError } from "./core/errors.js";
export type { Logger } from "./core/logger.js";
export type { AdmitRequest } from "./core/request.js";
export type { ChatMessage, Clock, Decision, OpenAIUsage, ToolDefinition, Usage } from "./core/types.js";
export {
  type AiSdkCallContext,
  type TokenfuseCallMetadata,
  type TokenfuseLanguageModelMiddleware,
  type TokenfuseMiddlewareOptions,
  tokenfuseMiddleware,
} from "./integrations/ai-sdk.js";
export {
  type GuardContext,
  type GuardedOpenAI,
  guardOpenAI,
  type OpenAIChatClient,
} from "./integrations/openai.js";
export { createGuardedStore, type GuardedStoreOptions } from "./stores/guarded-store.js";
export { createMemoryStore, type MemoryStoreOptions } from "./stores/memory-store.js";
export { createRedisStore, type RedisStoreOptions } from "./stores/redis/redis-store.js";
export type { Store } from "./stores/types.js";
export { StoreUnavailableError } from "./stores/types.js";
export { createTokenfuse, type Tokenfuse, type TokenfuseOptions } from "./tokenfuse.js";
export { getChatTokenizer, tokenizerForModel } from "./tokenizers/index.js";
export type { ChatTokenizer, TextTokenizer } from "./tokenizers/types.js";
export type {
  DecisionRecord as UsageLogDecisionRecord,
  SettleRecord as UsageLogSettleRecord,
} from "./usage-log/record.js";
