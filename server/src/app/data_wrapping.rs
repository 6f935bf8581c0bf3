//! The `{data, meta}` envelope.

use manifold_core::middleware::{Middleware, Next};
use manifold_core::{Context, Error, Result};
use serde_json::{Map, Value as Json};

/// The app node tagged `dataWrapping`: after the action, turns `ctx.body` into
/// `{"data": …, "meta": …}`. A handled action that produced nothing answers `{}` (200).
/// A streamed answer gets the same envelope, as text around its elements.
pub struct DataWrapping;

#[async_trait::async_trait]
impl Middleware for DataWrapping {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        next.run(ctx).await?;
        if ctx.without_data_wrapping {
            return Ok(());
        }
        let Some(action) = ctx.action.as_ref() else {
            return Ok(());
        };
        if let Some(array) = ctx.streamed.take() {
            // The same envelope as below, written around the elements as they stream.
            let after = match ctx.body_meta.take() {
                Some(meta) => {
                    let mut after = b",\"meta\":".to_vec();
                    serde_json::to_writer(&mut after, &meta)
                        .map_err(|e| Error::internal(format!("cannot write meta: {e}")))?;
                    after.push(b'}');
                    after
                }
                None => b"}".to_vec(),
            };
            ctx.streamed = Some(array.enclose(b"{\"data\":", &after));
            ctx.without_data_wrapping = true;
            return Ok(());
        }
        let is_list = action.action_name == "list";
        let mut envelope = Map::new();
        match ctx.body.take() {
            None => {}
            // A custom list handler may answer NocoBase-style `{rows, count, …}`; only for
            // `list`, so a record that has a `rows` field is never split.
            Some(Json::Object(mut body)) if is_list && body.contains_key("rows") => {
                let rows = body.remove("rows").unwrap_or(Json::Null);
                envelope.insert("data".into(), rows);
                envelope.insert("meta".into(), Json::Object(body));
            }
            Some(body) => {
                envelope.insert("data".into(), body);
            }
        }
        if let Some(meta) = ctx.body_meta.take() {
            envelope.insert("meta".into(), meta);
        }
        ctx.body = Some(Json::Object(envelope));
        ctx.without_data_wrapping = true;
        Ok(())
    }
}
