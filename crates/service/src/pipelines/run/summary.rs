//! How a run ends: its summary (outcome, counts, dead letters, per-node figures), metered and
//! recorded like any call.

use super::nodes::micros;
use super::{PipelineRun, Stop};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use warden_registry::{
    NewRecord, NodeId, NodeStats, PipelineName, PipelineRunStats, RunRecord, RunStats,
    UsageCounters,
};
use warden_runtime::Outcome;

/// A record that a node failed on under `on_error: dead_letter`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    /// The node.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub node: NodeId,
    /// The index (from 0) of the input record it came from; none for an aggregator's `finish`.
    pub record: Option<u64>,
    /// How the node's call ended.
    pub outcome: Outcome,
    /// What went wrong.
    pub error: Option<String>,
    /// The record the node was given, when it is UTF-8 and at most 64 KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The record, base64, when at most 64 KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_base64: Option<String>,
    /// The record's size in bytes.
    pub input_bytes: u64,
}

/// How a run ended, with its figures: the `Accept: application/json` answer, the trailing
/// summary line, and what the run's record keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunSummary {
    /// The run's record id.
    pub run_id: String,
    /// The pipeline.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub pipeline: PipelineName,
    /// The version that ran.
    pub version: u32,
    /// `ok`, or how the run stopped: a failing node's outcome (under `on_error: fail`),
    /// `timeout` (the run's deadline), `input_limit`, `cancelled` (the client went away).
    pub outcome: Outcome,
    /// What stopped the run.
    pub error: Option<String>,
    /// The node that stopped it, if one did.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub failed_node: Option<NodeId>,
    /// Input records read.
    pub records_in: u64,
    /// Records the sink nodes produced.
    pub records_out: u64,
    /// Records dropped by `dead_letter` nodes (at most `max_dead_letters`).
    pub dead_letters: Vec<DeadLetter>,
    /// Dead letters counted but not returned (past `max_dead_letters`).
    pub dead_letters_dropped: u64,
    /// Per node, by id.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, NodeStats>))]
    pub nodes: BTreeMap<NodeId, NodeStats>,
    /// Wall time of the run, in microseconds.
    pub wall_us: u64,
}

impl PipelineRun {
    /// The summary; the run is metered and recorded.
    pub(super) fn conclude(self, stop: Option<Stop>) -> RunSummary {
        let wall_us = micros(self.started.elapsed());
        let (outcome, error, failed_node) = match stop {
            None => (Outcome::Ok, None, None),
            Some(stop) => (stop.outcome, Some(stop.error), stop.node),
        };
        let nodes: BTreeMap<NodeId, NodeStats> = self
            .nodes
            .iter()
            .map(|node| {
                let stats = node.tally.as_ref().map(|tally| NodeStats {
                    p99_us: tally.histogram.p99(),
                    ..tally.stats.clone()
                });
                (node.id.clone(), stats.unwrap_or_default())
            })
            .collect();
        let fuel_used: u64 = nodes.values().map(|n| n.fuel_used).sum();
        let memory_peak = nodes
            .values()
            .map(|n| n.memory_peak_bytes)
            .max()
            .unwrap_or(0);
        let summary = RunSummary {
            run_id: self.context.run_id.to_string(),
            pipeline: self.version.name.clone(),
            version: self.version.version,
            outcome,
            error: error.clone(),
            failed_node,
            records_in: self.records_in,
            records_out: self.records_out,
            dead_letters: self.letters.kept,
            dead_letters_dropped: self.letters.dropped,
            nodes: nodes.clone(),
            wall_us,
        };
        let service = &self.service;
        service.meter_counters(
            &self.state,
            outcome,
            &UsageCounters {
                calls: 1,
                fuel: fuel_used,
                wall_us,
                memory_gb_s: memory_peak as f64 * (wall_us as f64 / 1e6) / 1e9,
                bytes_in: self.bytes_in,
                bytes_out: self.bytes_out,
                ..UsageCounters::default()
            },
        );
        let tenant = self.state.tenant.id.clone();
        service
            .metrics()
            .pipeline_run(&tenant, outcome, self.records_in);
        service.record(NewRecord {
            record: RunRecord {
                id: self.context.run_id.clone(),
                request_id: self.context.request_id.clone(),
                tenant,
                digest: self.digest,
                name: None,
                world: "pipeline".into(),
                export: "pipeline".into(),
                via: "pipeline".into(),
                started_at: crate::call::format_millis(self.started_at),
                outcome,
                error,
                limits: self.tenant_limits,
                stats: RunStats {
                    fuel_used,
                    wall_us,
                    queued_us: self.queued_us,
                    memory_peak_bytes: memory_peak,
                    ..RunStats::default()
                },
                logs: Vec::new(),
                logs_truncated: false,
                stdout: String::new(),
                stderr: String::new(),
                input: None,
                input_recorded: false,
                output: None,
                answered_late: false,
                config: BTreeMap::new(),
                outbound: Vec::new(),
                pipeline: Some(PipelineRunStats {
                    name: self.version.name.clone(),
                    version: self.version.version,
                    records_in: self.records_in,
                    records_out: self.records_out,
                    dead_letters: summary.dead_letters.len() as u64 + self.letters.dropped,
                    nodes,
                }),
            },
            input: None,
        });
        summary
    }
}
