//! An example plugin: an audit trail of every record created, on every data source.
//!
//! It uses each thing a plugin can: a migration (its table), a database event (each
//! committed create is recorded), a custom resource (`auditLog:list`, `auditLog:stats`)
//! whose statistics are cached, a custom action on every collection (`posts:history`), an
//! app middleware placed with `before`, a scheduled job (pruning old rows), a translated
//! message, and a command (`manifold audit-prune`). docs/plugins.md walks through it.

mod actions;
mod command;
mod log;
mod middleware;

use std::sync::Arc;

use manifold_core::middleware::Placement;
use manifold_core::resource::ResourceDefinition;
use manifold_core::{DataSource, Result};
use manifold_server::migrations::Migration;
use manifold_server::{CliCommand, Plugin, PluginContext};

pub use log::{AuditLog, AuditRow};

/// The audit plugin: how long rows are kept, and when the job that prunes them runs.
#[derive(Debug, Clone)]
pub struct AuditPlugin {
    /// Rows older than this many days are pruned by the job.
    pub retention_days: u32,
    /// When the pruning job runs (a cron expression; seconds optional).
    pub prune_cron: String,
}

impl Default for AuditPlugin {
    /// Keeps 90 days; prunes nightly at 03:00 UTC.
    fn default() -> Self {
        Self {
            retention_days: 90,
            prune_cron: "0 0 3 * * *".into(),
        }
    }
}

/// The plugin's message catalogues, one FTL source per locale.
const MESSAGES: [(&str, &str); 3] = [
    ("en-US", include_str!("../locales/en-US/audit.ftl")),
    ("zh-CN", include_str!("../locales/zh-CN/audit.ftl")),
    ("fr-FR", include_str!("../locales/fr-FR/audit.ftl")),
];

#[async_trait::async_trait]
impl Plugin for AuditPlugin {
    fn name(&self) -> &str {
        "audit"
    }

    fn migrations(&self) -> Vec<Migration> {
        vec![log::MIGRATION]
    }

    fn commands(&self) -> Vec<Arc<dyn CliCommand>> {
        vec![Arc::new(command::Prune)]
    }

    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()> {
        let log = AuditLog::open(app.main())?;

        // Its messages, in the languages it speaks; other callers get the English.
        for (locale, messages) in MESSAGES {
            app.i18n().add_messages(locale, messages)?;
        }

        // Every create on every source, once it has committed: a write that rolled back
        // is never audited.
        let recorder = log.clone();
        app.data_sources()
            .after_add_data_source(Arc::new(move |source: &Arc<DataSource>| {
                let log = recorder.clone();
                let key = source.key().to_owned();
                let registered = source.events().after_commit("afterCreate", move |event| {
                    let (log, key) = (log.clone(), key.clone());
                    async move { log.record(&key, &event).await }
                });
                if let Err(e) = registered {
                    tracing::error!(error = %e, "audit: cannot listen to afterCreate");
                }
                source.resource_manager().register_action_handler(
                    "history",
                    Arc::new(actions::History::new(recorder.clone())),
                );
            }));
        app.data_sources().declare_read_action("history");

        // Its own resource, on main; only roles granted `auditLog` (and root) reach it.
        app.main().resource_manager().define(
            ResourceDefinition::new("auditLog")
                .action("list", Arc::new(actions::List::new(log.clone())))
                .action(
                    "stats",
                    Arc::new(actions::Stats::new(
                        log.clone(),
                        app.cache().namespace("audit"),
                    )),
                ),
        );
        app.data_sources().declare_read_action("stats");

        // Says where the trail is, on every answer to a write, before the router runs.
        app.use_middleware(
            Arc::new(middleware::TrailHeader),
            Placement::tag("audit").after("auth").before("dataSource"),
        );

        // Each tick runs once across the replicas.
        let retention = chrono::Duration::days(i64::from(self.retention_days));
        let pruner = log.clone();
        app.scheduler()
            .add("audit.prune", &self.prune_cron, move |job| {
                let (log, cutoff) = (pruner.clone(), job.tick() - retention);
                async move { log.prune(cutoff).await.map(|_| ()) }
            })?;
        Ok(())
    }
}
