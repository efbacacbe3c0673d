//! The device side of an upload, written to be read: one PUT for a small file, a multipart
//! upload that resumes for a large one. `main.rs` is the command line around it; the API tests
//! run this same code (`multipart::the_device_example_resumes_without_sending_stored_parts_again`).

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// What to upload, where, and how.
#[derive(Debug, Clone)]
pub struct Upload {
    /// `http://host:port` of the Files service.
    pub api: String,
    /// The device's access token.
    pub token: String,
    /// The device's tenant and the device itself (the upload goes to its own root).
    pub tenant: String,
    /// The device.
    pub device: String,
    /// The file to send.
    pub file: PathBuf,
    /// The name it gets in the service (the file's own name by default).
    pub name: String,
    /// Parts of this many bytes (at least 5 MiB); a file no larger goes in one PUT.
    pub part_size: u64,
    /// Where the upload in progress is remembered, to resume it.
    pub state: PathBuf,
    /// Stop after sending this many parts (to try resuming); `None` to finish.
    pub stop_after: Option<usize>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The file's metadata once complete; `None` when the run stopped early.
    pub file: Option<Value>,
    /// The parts this run sent (1 for a single PUT).
    pub sent: Vec<u64>,
    /// The parts the store already held, not sent again.
    pub skipped: Vec<u64>,
}

/// The upload in progress, kept in the state file between runs.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    file_id: String,
    size: u64,
    sha256: String,
    part_size: u64,
}

fn hex(digest: impl AsRef<[u8]>) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of the whole file and of each part, reading it once.
fn digests(path: &Path, part_size: u64) -> anyhow::Result<(u64, String, Vec<String>)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut whole = Sha256::new();
    let mut parts = Vec::new();
    let mut size = 0;
    let mut buffer = vec![0; 1 << 20];
    let mut part = Sha256::new();
    let mut in_part = 0;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        let mut chunk = &buffer[..n];
        while !chunk.is_empty() {
            let room = usize::try_from(part_size - in_part).unwrap_or(usize::MAX);
            let (now, rest) = chunk.split_at(chunk.len().min(room));
            whole.update(now);
            part.update(now);
            in_part += now.len() as u64;
            size += now.len() as u64;
            if in_part == part_size {
                parts.push(hex(std::mem::take(&mut part).finalize()));
                in_part = 0;
            }
            chunk = rest;
        }
    }
    if in_part > 0 {
        parts.push(hex(part.finalize()));
    }
    Ok((size, hex(whole.finalize()), parts))
}

fn read_part(path: &Path, part_size: u64, size: u64, number: u64) -> anyhow::Result<Vec<u8>> {
    let start = part_size * (number - 1);
    let len = usize::try_from(part_size.min(size - start))?;
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = vec![0; len];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

struct Client {
    http: reqwest::Client,
    api: String,
    token: String,
}

impl Client {
    /// A call to the service; any answer but `expected` is an error with the service's message.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        expected: u16,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("calling {path}"))?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        ensure!(status == expected, "{path} answered {status}: {answer}");
        Ok(answer)
    }

    /// Sends bytes to a ticket's URL with exactly its headers, as signed.
    async fn put(&self, ticket: &Value, bytes: Vec<u8>) -> anyhow::Result<()> {
        let url = ticket["url"].as_str().context("a ticket without url")?;
        let mut request = self.http.put(url).body(bytes);
        for (name, value) in ticket["headers"].as_object().context("a ticket without headers")? {
            request = request.header(name.as_str(), value.as_str().unwrap_or_default());
        }
        let response = request.send().await.context("sending to the store")?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "the store refused the PUT: {status} {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// Uploads the file: resumes the upload the state file remembers, or starts one; completes it.
///
/// # Errors
/// When the service or the store refuses something, or the file cannot be read.
pub async fn run(upload: &Upload) -> anyhow::Result<Outcome> {
    let client = Client {
        http: reqwest::Client::new(),
        api: upload.api.trim_end_matches('/').to_owned(),
        token: upload.token.clone(),
    };
    let scope = format!("/v1/tenants/{}/devices/{}", upload.tenant, upload.device);
    let (size, sha256, part_digests) = digests(&upload.file, upload.part_size)?;
    let mut outcome = Outcome {
        file: None,
        sent: Vec::new(),
        skipped: Vec::new(),
    };

    if size <= upload.part_size {
        // Small enough for one PUT: the URL is signed for this length and SHA-256.
        let body = json!({"file_name": upload.name, "sha256": sha256, "size": size});
        let ticket = client
            .call(
                reqwest::Method::POST,
                &format!("{scope}/files/upload-url"),
                Some(&body),
                201,
            )
            .await?;
        client.put(&ticket, std::fs::read(&upload.file)?).await?;
        outcome.sent.push(1);
        let file_id = ticket["file_id"].as_str().context("no file_id")?;
        let path = format!("/v1/tenants/{}/files/{file_id}/complete", upload.tenant);
        outcome.file = Some(client.call(reqwest::Method::POST, &path, None, 200).await?);
        return Ok(outcome);
    }

    // A multipart upload in progress for this very content resumes; anything else starts anew.
    let remembered = std::fs::read(&upload.state)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<State>(&bytes).ok())
        .filter(|s| s.size == size && s.sha256 == sha256 && s.part_size == upload.part_size);
    let (file_id, mut tickets) = match remembered {
        Some(state) => (state.file_id, Vec::new()),
        None => {
            let body = json!({
                "file_name": upload.name, "sha256": sha256, "size": size,
                "parts": {"size": upload.part_size, "sha256": part_digests},
            });
            let answer = client
                .call(
                    reqwest::Method::POST,
                    &format!("{scope}/files/upload-url"),
                    Some(&body),
                    201,
                )
                .await?;
            let file_id = answer["file_id"].as_str().context("no file_id")?.to_owned();
            let state = State {
                file_id: file_id.clone(),
                size,
                sha256: sha256.clone(),
                part_size: upload.part_size,
            };
            std::fs::write(&upload.state, serde_json::to_vec(&state)?)?;
            (file_id, answer["parts"].as_array().cloned().unwrap_or_default())
        }
    };
    let file_path = format!("/v1/tenants/{}/files/{file_id}", upload.tenant);

    // Which parts the store holds already: only the others are sent. The answer comes in pages
    // (at most 1,000 parts each); `next` is where the following one starts.
    let mut missing = Vec::new();
    let mut after = 0;
    loop {
        let listing = client
            .call(
                reqwest::Method::GET,
                &format!("{file_path}/parts?after={after}"),
                None,
                200,
            )
            .await?;
        for part in listing["parts"].as_array().context("no parts")? {
            let number = part["part_number"].as_u64().context("no part_number")?;
            if part["stored"] == true {
                outcome.skipped.push(number)
            } else {
                missing.push(number)
            }
        }
        match listing["next"].as_u64() {
            Some(next) if next > after => after = next,
            Some(next) => bail!("the parts listing does not advance: next {next} after {after}"),
            None => break,
        }
    }
    for batch in missing.chunks(100) {
        // Fresh tickets for the parts of this batch that the first answer did not carry.
        let have: Vec<u64> = tickets.iter().filter_map(|t| t["part_number"].as_u64()).collect();
        let wanted: Vec<u64> = batch.iter().copied().filter(|n| !have.contains(n)).collect();
        if !wanted.is_empty() {
            let answer = client
                .call(
                    reqwest::Method::POST,
                    &format!("{file_path}/parts"),
                    Some(&json!({"part_numbers": wanted})),
                    200,
                )
                .await?;
            tickets.extend(answer["parts"].as_array().cloned().unwrap_or_default());
        }
        for &number in batch {
            if upload.stop_after.is_some_and(|n| outcome.sent.len() >= n) {
                return Ok(outcome);
            }
            let ticket = tickets
                .iter()
                .find(|t| t["part_number"] == number)
                .with_context(|| format!("no ticket for part {number}"))?;
            let bytes = read_part(&upload.file, upload.part_size, size, number)?;
            if let Err(first) = client.put(ticket, bytes.clone()).await {
                // The URL may have expired, or the link dropped: once more with a fresh ticket.
                eprintln!("part {number}: {first:#}; retrying with a fresh URL");
                let body = json!({"part_numbers": [number]});
                let answer = client
                    .call(reqwest::Method::POST, &format!("{file_path}/parts"), Some(&body), 200)
                    .await?;
                client.put(&answer["parts"][0], bytes).await?;
            }
            outcome.sent.push(number);
        }
    }
    outcome.file = Some(
        client
            .call(reqwest::Method::POST, &format!("{file_path}/complete"), None, 200)
            .await?,
    );
    // Done: nothing left to resume.
    let _ = std::fs::remove_file(&upload.state);
    Ok(outcome)
}
