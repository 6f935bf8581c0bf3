//! Answers of many records, written as JSON text a batch at a time instead of held as one
//! `Json` tree: `list` with `paginate=false` and a bulk `create`.
//!
//! A handler sets [`crate::Context::streamed`] instead of `body`. The data-wrapping layer
//! writes the `{"data": […]}` envelope around it, and the HTTP layer sends the chunks as
//! they come. Once the first byte is sent an error can no longer become a 4xx: the HTTP
//! layer then ends the body abruptly, so the client sees an incomplete answer, never a
//! shorter valid one (docs/api.md, "Large answers").

use futures_util::stream::{self, BoxStream, StreamExt as _};
use serde_json::Value as Json;

use crate::error::{Error, ErrorKind, Result};
use crate::repository::Record;

/// Pieces of a JSON array's element list, in order: each chunk is one or more whole
/// elements separated by commas, without the brackets and without a leading or trailing
/// comma.
pub type Chunks = BoxStream<'static, Result<Vec<u8>>>;

/// A JSON array answer produced as text, chunk by chunk, with the text that goes before
/// and after its elements (`[` and `]`, and an envelope once one is put around it).
pub struct StreamedArray {
    before: Vec<u8>,
    /// Behind a mutex only so a [`crate::Context`] holding it stays `Sync`; nothing
    /// contends for it.
    chunks: std::sync::Mutex<Chunks>,
    after: Vec<u8>,
}

impl StreamedArray {
    /// An array whose elements `chunks` produces.
    pub fn new(chunks: Chunks) -> Self {
        Self {
            before: b"[".to_vec(),
            chunks: std::sync::Mutex::new(chunks),
            after: b"]".to_vec(),
        }
    }

    /// The same answer inside `before` … `after` (`{"data":` … `}`).
    pub fn enclose(mut self, before: &[u8], after: &[u8]) -> Self {
        self.before.splice(0..0, before.iter().copied());
        self.after.extend_from_slice(after);
        self
    }

    /// The text before the elements, the elements, and the text after them.
    pub fn into_parts(self) -> (Vec<u8>, Chunks, Vec<u8>) {
        let chunks = self.chunks.into_inner().unwrap_or_else(|e| e.into_inner());
        (self.before, chunks, self.after)
    }

    /// An array whose elements are all written already (`text` as [`Chunks`] describes).
    pub fn whole(text: Vec<u8>) -> Self {
        Self::new(stream::once(async move { Ok(text) }).boxed())
    }

    /// Fails the rest of the array with a timeout once `deadline` passes, so a slow reader
    /// cannot hold what the chunks hold (a pooled connection) for longer than a request may
    /// run.
    pub fn until(self, deadline: tokio::time::Instant, what: String) -> Self {
        let (before, chunks, after) = self.into_parts();
        let chunks = stream::unfold((chunks, Some(what)), move |(mut chunks, what)| async move {
            let what = what?;
            match tokio::time::timeout_at(deadline, chunks.next()).await {
                Ok(Some(chunk)) => Some((chunk, (chunks, Some(what)))),
                Ok(None) => None,
                Err(_) => Some((Err(Error::new(ErrorKind::Timeout, what)), (chunks, None))),
            }
        });
        Self {
            before,
            chunks: std::sync::Mutex::new(chunks.boxed()),
            after,
        }
    }
}

impl std::fmt::Debug for StreamedArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamedArray")
    }
}

/// `rows` as one chunk: the records' JSON separated by commas.
pub fn records_chunk(rows: Vec<Record>) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(rows.len() * 128);
    for (i, row) in rows.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        append_record(&mut out, row)?;
    }
    Ok(out)
}

/// Appends one record's JSON to `out`.
pub fn append_record(out: &mut Vec<u8>, row: Record) -> Result<()> {
    serde_json::to_writer(out, &Json::Object(row))
        .map_err(|e| Error::internal(format!("cannot write a record as JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(v: Json) -> Record {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_chunk_is_the_elements_of_an_array() {
        let rows = vec![record(json!({"id": 1, "t": "a"})), record(json!({"id": 2}))];
        let chunk = records_chunk(rows).expect("chunk");
        let whole = [b"[".as_slice(), &chunk, b"]"].concat();
        assert_eq!(
            serde_json::from_slice::<Json>(&whole).expect("json"),
            json!([{"id": 1, "t": "a"}, {"id": 2}])
        );
        assert!(records_chunk(Vec::new()).expect("empty").is_empty());
    }

    #[tokio::test]
    async fn a_passed_deadline_ends_the_array_with_a_timeout() {
        let chunks = stream::iter([Ok(b"1".to_vec())])
            .chain(stream::pending())
            .boxed();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(50);
        let (_, mut chunks, _) = StreamedArray::new(chunks)
            .until(deadline, "too slow".into())
            .into_parts();
        assert_eq!(chunks.next().await, Some(Ok(b"1".to_vec())));
        let Some(Err(e)) = chunks.next().await else {
            panic!("expected a timeout");
        };
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(chunks.next().await.is_none());
    }
}
