// Generated from the Rust wire types (tend-api); do not edit. Regenerate with
// `TEND_UPDATE_BINDINGS=1 cargo test -p tend-api --lib bindings`.
import type { AlertState } from "./AlertState";
import type { ErrorCode } from "./ErrorCode";
import type { HostStatus } from "./HostStatus";
import type { Event } from "./Event";
import type { RecycleReason } from "./RecycleReason";
import type { Severity } from "./Severity";
import type { Source } from "./Source";
import type { State } from "./State";

export const STATES: readonly State[] = ["INITIALIZING", "READY", "WORKING", "COMPLETING", "COMPLETED", "FAILED", "TIMEOUT", "TERMINATED", "CLEANED"];
export const SOURCES: readonly Source[] = ["spawned", "attached", "container", "reported"];
export const RECYCLE_REASONS: readonly RecycleReason[] = ["ttl", "requests", "memory", "died", "hung", "manual", "rule"];
export const SEVERITIES: readonly Severity[] = ["info", "warning", "critical"];
export const ALERT_STATES: readonly AlertState[] = ["inactive", "pending", "firing", "flapping", "resolved"];
export const ERROR_CODES: readonly ErrorCode[] = ["bad_request", "unauthorized", "forbidden", "too_many_attempts", "not_found", "too_large", "already_recycling", "already_registered", "invalid_transition", "not_reported", "not_container", "ended", "stopping", "store_unavailable", "store_error", "io_error", "host_unreachable"];
export const HOST_STATUSES: readonly HostStatus[] = ["connecting", "ok", "unreachable", "unauthorized", "tls_error", "degraded"];
export const EVENT_TYPES: readonly Event["type"][] = ["worker_added", "worker_removed", "state_changed", "recycle_started", "recycled", "recycle_failed", "storm_tripped", "alert_changed", "source_status", "process_escaped", "operator_action"];

/** The HTTP status that goes with each error code. */
export const ERROR_STATUS: Record<ErrorCode, number> = { bad_request: 400, unauthorized: 401, forbidden: 403, too_many_attempts: 429, not_found: 404, too_large: 413, already_recycling: 409, already_registered: 409, invalid_transition: 409, not_reported: 409, not_container: 409, ended: 409, stopping: 503, store_unavailable: 503, store_error: 500, io_error: 500, host_unreachable: 502 };
