//! The hot paths of a request, each against what a user would reach for instead, measured by
//! criterion in one run; the ratios are printed at the end (`files_bench::report`).
//!
//! `cargo bench -p files-bench` (all), `cargo bench -p files-bench -- token_es256` (one group).
//! What each compares and why that peer: docs/performance.md.
//!
//! Times are the CPU time of the benchmark's thread ([`ThreadTime`]), not wall-clock time.

// Setup that fails is a broken benchmark: it may panic, and the report is printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::Criterion;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use files_adapters::jwks::{JwksVerifier, JwtConfig, SignatureLibrary};
use files_adapters::s3::{S3Config, S3Signer};
use files_bench::{Comparison, Measured, MustShow, output_directory, report};
use files_core::{
    Access, DeviceId, DownloadSpec, FileId, FileName, FileRecord, FileState, FileUploaded, ObjectKey, Owner, Principal,
    Scope, Sha256, TenantId, TokenVerifier as _, UploadSpec, UrlSigner as _, authorize,
};
use jwt_simple::prelude::*;
use uuid::Uuid;

const ISSUER: &str = "https://dsts.bench";
const AUDIENCE: &str = "files";
const TENANT: u128 = 0x7c0e_5a9e_0000_4000_8000_0000_0000_0001;
const DEVICE: u128 = 0x7c0e_5a9e_0000_4000_8000_0000_0000_00d1;

/// The CPU time of the measuring thread: what the benchmark ran, without the time other
/// processes held the cores meanwhile. On a shared machine (the development machine runs other
/// builds) wall-clock time counts those too, and changes with the load from one function to the
/// next, so that the ratio of two functions measured a few seconds apart moved by tens of
/// percent between runs. Every benchmark runs on the thread that measures it (the tokio runtime
/// is current-thread), so nothing it does is missed. Shown as durations, like wall-clock time.
struct ThreadTime(WallTime);

fn thread_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(now.tv_sec.unsigned_abs(), u32::try_from(now.tv_nsec).unwrap_or(0))
}

impl Measurement for ThreadTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_time()
    }

    fn end(&self, started: Duration) -> Duration {
        thread_time().saturating_sub(started)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// The custom claims every contender parses: a map, the verifier's own type (it reads the
/// tenant, the device and the scope under the names its configuration gives them). The libraries
/// alone parse the same claims into the same type, so neither side parses less than the other.
type Custom = serde_json::Map<String, serde_json::Value>;

fn device_claims() -> JWTClaims<Custom> {
    let mut custom = serde_json::Map::new();
    custom.insert("tenant_id".to_owned(), Uuid::from_u128(TENANT).to_string().into());
    custom.insert("device_id".to_owned(), Uuid::from_u128(DEVICE).to_string().into());
    Claims::with_custom_claims(custom, jwt_simple::prelude::Duration::from_hours(1))
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
        .with_subject(Uuid::from_u128(DEVICE).to_string())
}

/// One algorithm: a signed device token, its public JWK, and jwt-simple alone verifying it.
struct Signed {
    token: String,
    jwk: String,
    verify: Box<dyn Fn(&str) -> bool>,
}

fn signed(alg: &str) -> Signed {
    // What the verifier checks with its default configuration: `iss`, `aud`, and the times with
    // a leeway of 60 s. jwt-simple takes its options by value: they are made once and cloned
    // for each token, as the verifier does.
    let options = VerificationOptions {
        allowed_issuers: Some(std::iter::once(ISSUER.to_owned()).collect()),
        allowed_audiences: Some(std::iter::once(AUDIENCE.to_owned()).collect()),
        time_tolerance: Some(jwt_simple::prelude::Duration::from_secs(60)),
        ..VerificationOptions::default()
    };
    match alg {
        "ES256" => {
            let key = ES256KeyPair::generate().with_key_id("bench");
            let public = key.public_key();
            Signed {
                token: key.sign(device_claims()).unwrap(),
                jwk: public.to_jwk(),
                verify: Box::new(move |t| public.verify_token::<Custom>(t, Some(options.clone())).is_ok()),
            }
        }
        "RS256" => {
            let key = RS256KeyPair::generate(2048).unwrap().with_key_id("bench");
            let public = key.public_key();
            Signed {
                token: key.sign(device_claims()).unwrap(),
                jwk: public.to_jwk(),
                verify: Box::new(move |t| public.verify_token::<Custom>(t, Some(options.clone())).is_ok()),
            }
        }
        _ => {
            let key = Ed25519KeyPair::generate().with_key_id("bench");
            let public = key.public_key();
            Signed {
                token: key.sign(device_claims()).unwrap(),
                jwk: public.to_jwk(),
                verify: Box::new(move |t| public.verify_token::<Custom>(t, Some(options.clone())).is_ok()),
            }
        }
    }
}

/// The service's verifier over one JWK, with the verified-token cache of `capacity` (0: off).
fn verifier(jwk: &str, capacity: u64) -> JwksVerifier {
    verifier_with(jwk, capacity, SignatureLibrary::JwtSimple)
}

/// The same, checking signatures with `signature_library`.
fn verifier_with(jwk: &str, capacity: u64, signature_library: SignatureLibrary) -> JwksVerifier {
    let config = JwtConfig {
        token_cache_capacity: capacity,
        signature_library,
        ..JwtConfig::new(ISSUER, AUDIENCE)
    };
    JwksVerifier::from_jwks_json(config, &format!(r#"{{"keys":[{jwk}]}}"#)).unwrap()
}

/// Token verification, ES256 / RS256 / EdDSA: the service's verifier (cache off) on each of its
/// signature libraries, and each library alone, all with the same checks (signature, `iss`,
/// `aud`, `exp`, `nbf`) and parsing the same claims ([`Custom`]). What the verifier adds over its
/// library (the key chosen by `kid`, the algorithm checked against the key, the maximum lifetime,
/// the principal read from the claims) is its overhead.
fn tokens(c: &mut Criterion<ThreadTime>) {
    let rt = runtime();
    for (alg, group) in [
        ("ES256", "token_es256"),
        ("RS256", "token_rs256"),
        ("EdDSA", "token_eddsa"),
    ] {
        let signed = signed(alg);
        let ours = verifier(&signed.jwk, 0);
        let ours_fast = verifier_with(&signed.jwk, 0, SignatureLibrary::JsonWebToken);
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&signed.jwk).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let algorithm = match alg {
            "ES256" => jsonwebtoken::Algorithm::ES256,
            "RS256" => jsonwebtoken::Algorithm::RS256,
            _ => jsonwebtoken::Algorithm::EdDSA,
        };
        // `exp` with a leeway of 60 s and `iss` and `aud` are its defaults with these two calls;
        // the verifier refuses a token before its `nbf` too. (It also refuses an `iat` in the
        // future, which jsonwebtoken cannot check.)
        let mut validation = jsonwebtoken::Validation::new(algorithm);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_nbf = true;
        let peer = |token: &str| jsonwebtoken::decode::<Custom>(token, &key, &validation).is_ok();
        // Every contender accepts the token: none measures a refusal.
        assert!(rt.block_on(ours.verify(&signed.token)).is_ok(), "{alg}: ours");
        assert!(
            rt.block_on(ours_fast.verify(&signed.token)).is_ok(),
            "{alg}: ours, jsonwebtoken"
        );
        assert!((signed.verify)(&signed.token), "{alg}: jwt-simple");
        assert!(peer(&signed.token), "{alg}: jsonwebtoken");

        // Each verifier right before the library it wraps: criterion measures one function after
        // the other, and on a shared machine the load drifts; the nearer the two of a pair, the
        // less of that drift their ratio carries. The verifier is awaited inside the runtime, as
        // the server awaits it (criterion enters the runtime once per batch of tokens, not once
        // per token).
        let mut group = c.benchmark_group(group);
        group.bench_function("files_verifier", |b| {
            b.to_async(&rt).iter(|| ours.verify(black_box(&signed.token)));
        });
        group.bench_function("jwt_simple", |b| b.iter(|| (signed.verify)(black_box(&signed.token))));
        group.bench_function("files_verifier_jsonwebtoken", |b| {
            b.to_async(&rt).iter(|| ours_fast.verify(black_box(&signed.token)));
        });
        group.bench_function("jsonwebtoken", |b| b.iter(|| peer(black_box(&signed.token))));
        group.finish();
    }
}

/// The verified-token cache: a token verified before against a full ES256 verification.
fn token_cache(c: &mut Criterion<ThreadTime>) {
    let rt = runtime();
    let signed = signed("ES256");
    let full = verifier(&signed.jwk, 0);
    let cached = verifier(&signed.jwk, 1_000);
    assert!(rt.block_on(cached.verify(&signed.token)).is_ok());
    let mut group = c.benchmark_group("token_cache");
    group.bench_function("cached", |b| {
        b.to_async(&rt).iter(|| cached.verify(black_box(&signed.token)));
    });
    group.bench_function("full_es256", |b| {
        b.to_async(&rt).iter(|| full.verify(black_box(&signed.token)));
    });
    group.finish();
}

fn object_key() -> ObjectKey {
    ObjectKey {
        tenant: TenantId::from_uuid(Uuid::from_u128(TENANT)),
        owner: Owner::Device(DeviceId::from_uuid(Uuid::from_u128(DEVICE))),
        file: FileId::new(),
    }
}

const SHA256_HEX: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

/// Presigning PUT (with `content-length` and `x-amz-checksum-sha256` signed) and GET: the
/// service's signer (rusty-s3) against aws-sdk-s3's presigner, same endpoint, keys and lifetime.
fn presign(c: &mut Criterion<ThreadTime>) {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_s3::presigning::PresigningConfig;

    let rt = runtime();
    let endpoint = "http://127.0.0.1:3900";
    let config = S3Config::new(
        url::Url::parse(endpoint).unwrap(),
        "GKbench",
        secrecy::SecretString::from("bench-secret-key"),
    );
    let ours = S3Signer::new(&config).unwrap();
    let sdk = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(Credentials::new("GKbench", "bench-secret-key", None, None, "bench"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            // The client wants a timer (the `rt-tokio` feature would bring this one).
            .sleep_impl(aws_sdk_s3::config::SharedAsyncSleep::new(TokioSleep))
            .build(),
    );
    let key = object_key();
    let sha256 = Sha256::parse(SHA256_HEX).unwrap();
    let sha256_b64 = sha256.to_base64();
    let expires_in = Duration::from_secs(900);
    let upload = UploadSpec {
        key,
        sha256,
        size: Some(1_048_576),
        content_type: None,
        expires_in,
    };
    let download = DownloadSpec {
        key,
        expires_in,
        content_disposition: None,
    };
    let key_text = key.to_string();
    let sdk_put = || {
        rt.block_on(
            sdk.put_object()
                .bucket(&config.bucket)
                .key(&key_text)
                .content_length(1_048_576)
                .checksum_sha256(&sha256_b64)
                .presigned(PresigningConfig::expires_in(expires_in).unwrap()),
        )
        .unwrap()
        .uri()
        .len()
    };
    let sdk_get = || {
        rt.block_on(
            sdk.get_object()
                .bucket(&config.bucket)
                .key(&key_text)
                .presigned(PresigningConfig::expires_in(expires_in).unwrap()),
        )
        .unwrap()
        .uri()
        .len()
    };

    let mut group = c.benchmark_group("presign_put");
    group.bench_function("rusty_s3", |b| b.iter(|| ours.sign_upload(black_box(&upload)).unwrap()));
    group.bench_function("aws_sdk_s3", |b| b.iter(sdk_put));
    group.finish();
    let mut group = c.benchmark_group("presign_get");
    group.bench_function("rusty_s3", |b| {
        b.iter(|| ours.sign_download(black_box(&download)).unwrap())
    });
    group.bench_function("aws_sdk_s3", |b| b.iter(sdk_get));
    group.finish();
}

/// tokio's timer for aws-sdk-s3 (presigning never waits; the client refuses to be built
/// without one).
#[derive(Debug)]
struct TokioSleep;

impl aws_sdk_s3::config::AsyncSleep for TokioSleep {
    fn sleep(&self, duration: Duration) -> aws_sdk_s3::config::Sleep {
        aws_sdk_s3::config::Sleep::new(tokio::time::sleep(duration))
    }
}

/// The casbin model of docs/api.md's permission table: a tenant service may do anything in its
/// tenant; a device may read and write its own root and read the tenant root.
const CASBIN_MODEL: &str = r#"
[request_definition]
r = sub_tenant, sub_device, obj_tenant, obj_owner, act

[policy_definition]
p = rule

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = p.rule == "files" && r.sub_tenant == r.obj_tenant && (r.sub_device == "" || r.sub_device == r.obj_owner || (r.obj_owner == "_tenant" && r.act == "read"))
"#;

/// The permission check: the core's `authorize` (a pure function over the table) against a
/// casbin enforcer holding the same table as a model.
fn permission(c: &mut Criterion<ThreadTime>) {
    use casbin::{CoreApi as _, DefaultModel, Enforcer, MemoryAdapter, MgmtApi as _};

    let rt = runtime();
    let enforcer = rt.block_on(async {
        let model = DefaultModel::from_str(CASBIN_MODEL).await.unwrap();
        let mut enforcer = Enforcer::new(model, MemoryAdapter::default()).await.unwrap();
        enforcer.add_policy(vec!["files".to_owned()]).await.unwrap();
        enforcer
    });
    let tenant = TenantId::from_uuid(Uuid::from_u128(TENANT));
    let device = DeviceId::from_uuid(Uuid::from_u128(DEVICE));
    let other = DeviceId::from_uuid(Uuid::from_u128(DEVICE + 1));
    let principal = Principal::Device { tenant, device };
    let scope = |owner| Scope { tenant, owner };
    // The peer is given its strings ready (its best case): the request's ids as text.
    let text = |owner: Owner| match owner {
        Owner::Device(d) => d.to_string(),
        Owner::Tenant => "_tenant".to_owned(),
    };
    let enforce = |owner: Owner, access: Access| {
        let act = if access == Access::Read { "read" } else { "write" };
        enforcer
            .enforce((
                tenant.to_string(),
                device.to_string(),
                tenant.to_string(),
                text(owner),
                act,
            ))
            .unwrap()
    };
    // Both say the same on the table's cases.
    for owner in [Owner::Device(device), Owner::Device(other), Owner::Tenant] {
        for access in [Access::Read, Access::Write] {
            assert_eq!(
                authorize(&principal, scope(owner), access).is_ok(),
                enforce(owner, access),
                "{owner:?} {access:?}"
            );
        }
    }
    let request = (
        tenant.to_string(),
        device.to_string(),
        tenant.to_string(),
        device.to_string(),
        "write",
    );
    let mut group = c.benchmark_group("permission");
    group.bench_function("authorize", |b| {
        b.iter(|| {
            authorize(
                black_box(&principal),
                black_box(scope(Owner::Device(device))),
                Access::Write,
            )
            .is_ok()
        });
    });
    group.bench_function("casbin", |b| {
        b.iter(|| enforcer.enforce(black_box(request.clone())).unwrap());
    });
    group.finish();
}

/// The `file.uploaded` event's body: serde_json (what the publisher uses) against simd-json's
/// serde serializer.
fn event(c: &mut Criterion<ThreadTime>) {
    let record = FileRecord {
        id: FileId::new(),
        tenant: TenantId::from_uuid(Uuid::from_u128(TENANT)),
        owner: Owner::Device(DeviceId::from_uuid(Uuid::from_u128(DEVICE))),
        name: FileName::parse("logs/2026-11-30/engine.log.gz").unwrap(),
        sha256: Sha256::parse(SHA256_HEX).unwrap(),
        size: Some(1_048_576),
        content_type: None,
        state: FileState::Available,
        created_at: time::OffsetDateTime::now_utc(),
        completed_at: Some(time::OffsetDateTime::now_utc()),
        multipart: None,
        upload_expires_at: None,
    };
    let event = FileUploaded::new(
        Uuid::new_v4(),
        &record,
        1_048_576,
        "files",
        time::OffsetDateTime::now_utc(),
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&serde_json::to_vec(&event).unwrap()).unwrap(),
        serde_json::from_slice::<serde_json::Value>(&simd_json::to_vec(&event).unwrap()).unwrap()
    );
    let mut group = c.benchmark_group("event_json");
    group.bench_function("serde_json", |b| {
        b.iter(|| serde_json::to_vec(black_box(&event)).unwrap())
    });
    group.bench_function("simd_json", |b| {
        b.iter(|| simd_json::to_vec(black_box(&event)).unwrap())
    });
    group.finish();
}

const fn measured(label: &'static str, group: &'static str, id: &'static str) -> Measured {
    Measured { label, group, id }
}

/// The verifier over the library it wraps, for one algorithm: at most 10 % more (the issue's
/// must-show).
const fn overhead(what: &'static str, group: &'static str, library: SignatureLibrary) -> Comparison {
    let (ours, peer) = match library {
        SignatureLibrary::JwtSimple => (
            measured("files verifier (jwt-simple)", group, "files_verifier"),
            measured("jwt-simple alone", group, "jwt_simple"),
        ),
        SignatureLibrary::JsonWebToken => (
            measured("files verifier (jsonwebtoken)", group, "files_verifier_jsonwebtoken"),
            measured("jsonwebtoken alone", group, "jsonwebtoken"),
        ),
    };
    Comparison {
        what,
        ours,
        peer,
        must_show: Some(MustShow::OverheadAtMost(10.0)),
    }
}

const COMPARISONS: [Comparison; 17] = [
    overhead(
        "token ES256 overhead, jwt-simple",
        "token_es256",
        SignatureLibrary::JwtSimple,
    ),
    overhead(
        "token ES256 overhead, jsonwebtoken",
        "token_es256",
        SignatureLibrary::JsonWebToken,
    ),
    overhead(
        "token RS256 overhead, jwt-simple",
        "token_rs256",
        SignatureLibrary::JwtSimple,
    ),
    overhead(
        "token RS256 overhead, jsonwebtoken",
        "token_rs256",
        SignatureLibrary::JsonWebToken,
    ),
    overhead(
        "token EdDSA overhead, jwt-simple",
        "token_eddsa",
        SignatureLibrary::JwtSimple,
    ),
    overhead(
        "token EdDSA overhead, jsonwebtoken",
        "token_eddsa",
        SignatureLibrary::JsonWebToken,
    ),
    Comparison {
        what: "token ES256",
        ours: measured("files verifier (jwt-simple)", "token_es256", "files_verifier"),
        peer: measured("jsonwebtoken (aws-lc-rs)", "token_es256", "jsonwebtoken"),
        must_show: None,
    },
    Comparison {
        what: "token RS256",
        ours: measured("files verifier (jwt-simple)", "token_rs256", "files_verifier"),
        peer: measured("jsonwebtoken (aws-lc-rs)", "token_rs256", "jsonwebtoken"),
        must_show: None,
    },
    Comparison {
        what: "token EdDSA",
        ours: measured("files verifier (jwt-simple)", "token_eddsa", "files_verifier"),
        peer: measured("jsonwebtoken (aws-lc-rs)", "token_eddsa", "jsonwebtoken"),
        must_show: None,
    },
    Comparison {
        what: "token ES256, verifier's libraries",
        ours: measured(
            "files verifier (jsonwebtoken)",
            "token_es256",
            "files_verifier_jsonwebtoken",
        ),
        peer: measured("files verifier (jwt-simple)", "token_es256", "files_verifier"),
        must_show: None,
    },
    Comparison {
        what: "token RS256, verifier's libraries",
        ours: measured(
            "files verifier (jsonwebtoken)",
            "token_rs256",
            "files_verifier_jsonwebtoken",
        ),
        peer: measured("files verifier (jwt-simple)", "token_rs256", "files_verifier"),
        must_show: None,
    },
    Comparison {
        what: "token EdDSA, verifier's libraries",
        ours: measured(
            "files verifier (jsonwebtoken)",
            "token_eddsa",
            "files_verifier_jsonwebtoken",
        ),
        peer: measured("files verifier (jwt-simple)", "token_eddsa", "files_verifier"),
        must_show: None,
    },
    Comparison {
        what: "verified-token cache (ES256)",
        ours: measured("cached verification", "token_cache", "cached"),
        peer: measured("full ES256 verification", "token_cache", "full_es256"),
        must_show: Some(MustShow::AtLeast(10.0)),
    },
    Comparison {
        what: "presign PUT",
        ours: measured("files signer (rusty-s3)", "presign_put", "rusty_s3"),
        peer: measured("aws-sdk-s3 presigner", "presign_put", "aws_sdk_s3"),
        must_show: None,
    },
    Comparison {
        what: "presign GET",
        ours: measured("files signer (rusty-s3)", "presign_get", "rusty_s3"),
        peer: measured("aws-sdk-s3 presigner", "presign_get", "aws_sdk_s3"),
        must_show: None,
    },
    Comparison {
        what: "permission check",
        ours: measured("files_core::authorize", "permission", "authorize"),
        peer: measured("casbin enforcer", "permission", "casbin"),
        must_show: None,
    },
    Comparison {
        what: "file.uploaded serialisation",
        ours: measured("serde_json", "event_json", "serde_json"),
        peer: measured("simd-json", "event_json", "simd_json"),
        must_show: None,
    },
];

fn main() {
    let started = SystemTime::now();
    let dir = output_directory();
    let mut criterion = Criterion::default()
        .with_measurement(ThreadTime(WallTime))
        .output_directory(&dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    tokens(&mut criterion);
    token_cache(&mut criterion);
    presign(&mut criterion);
    permission(&mut criterion);
    event(&mut criterion);
    criterion.final_summary();
    println!("{}", report(&dir, &COMPARISONS, started));
}
