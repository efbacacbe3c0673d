//! The brief's permission table, every cell, over HTTP, for both principals.

use files_core::TenantId;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Harness, device_scope, json_of, new_device, new_tenant, tenant_scope};

#[derive(Debug, Clone, Copy)]
enum Principal {
    Device,
    Service,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    OwnDevice,
    OtherDevice,
    Tenant,
    OtherTenantDevice,
    OtherTenant,
}

/// The brief's table, written out: (read allowed, write allowed).
const fn allowed(principal: Principal, target: Target) -> (bool, bool) {
    match (principal, target) {
        (Principal::Device, Target::OwnDevice) => (true, true),
        (Principal::Device, Target::OtherDevice) => (false, false),
        (Principal::Device, Target::Tenant) => (true, false),
        (Principal::Service, Target::OwnDevice | Target::OtherDevice | Target::Tenant) => (true, true),
        (_, Target::OtherTenantDevice | Target::OtherTenant) => (false, false),
    }
}

fn expect(allowed: bool, ok: StatusCode) -> StatusCode {
    if allowed { ok } else { StatusCode::FORBIDDEN }
}

#[tokio::test]
async fn every_cell_for_both_principals() {
    permission_table(&Harness::start().await).await;
}

/// Every cell of the table against whatever adapters `h` runs on.
pub async fn permission_table(h: &Harness) {
    let api = &h.api;
    let (tenant, device, other_device) = (h.tenant, h.device, new_device());
    let (other_tenant, foreign_device) = (new_tenant(), new_device());
    let owner_token = |t: TenantId| h.dsts.service_token(files_testkit::dsts::Alg::Es256, t);

    let targets = [
        (Target::OwnDevice, tenant, device_scope(tenant, device)),
        (Target::OtherDevice, tenant, device_scope(tenant, other_device)),
        (Target::Tenant, tenant, tenant_scope(tenant)),
        (
            Target::OtherTenantDevice,
            other_tenant,
            device_scope(other_tenant, foreign_device),
        ),
        (Target::OtherTenant, other_tenant, tenant_scope(other_tenant)),
    ];
    let mut cells = 0;
    for (target, target_tenant, scope) in &targets {
        // Each target holds a file its tenant's service put there.
        let seed = api
            .upload(scope, *target_tenant, &owner_token(*target_tenant), "seed.txt", b"seed")
            .await;
        for principal in [Principal::Device, Principal::Service] {
            let token = match principal {
                Principal::Device => h.device_token(),
                Principal::Service => h.service_token(),
            };
            let (read, write) = allowed(principal, *target);
            let case = format!("{principal:?} on {target:?}");
            let file = format!("/v1/tenants/{target_tenant}/files/{seed}");

            // Reads.
            let status = api.get(&format!("{scope}/files"), &token).await.status();
            assert_eq!(status, expect(read, StatusCode::OK), "list: {case}");
            let (status, body) = api.download_url(scope, &token, &json!({"file_name": "seed.txt"})).await;
            assert_eq!(status, expect(read, StatusCode::OK), "download by name: {case}: {body}");
            let (status, _) = api.download_url(scope, &token, &json!({"file_id": seed})).await;
            assert_eq!(status, expect(read, StatusCode::OK), "download by id: {case}");
            let status = api.get(&file, &token).await.status();
            assert_eq!(status, expect(read, StatusCode::OK), "get: {case}");

            // Writes.
            let (status, body) = api.upload_url(scope, &token, "new.txt", b"new").await;
            assert_eq!(status, expect(write, StatusCode::CREATED), "upload-url: {case}: {body}");
            let (status, _) = json_of(api.post_empty(&format!("{file}/complete"), &token).await).await;
            assert_eq!(status, expect(write, StatusCode::OK), "complete: {case}");
            let victim = api
                .upload(scope, *target_tenant, &owner_token(*target_tenant), "victim.txt", b"v")
                .await;
            let status = api
                .delete(&format!("/v1/tenants/{target_tenant}/files/{victim}"), &token)
                .await
                .status();
            assert_eq!(status, expect(write, StatusCode::NO_CONTENT), "delete: {case}");
            if status == StatusCode::FORBIDDEN {
                let victim = format!("/v1/tenants/{target_tenant}/files/{victim}");
                let still = api.get(&victim, &owner_token(*target_tenant)).await.status();
                assert_eq!(still, StatusCode::OK, "a refused delete deletes nothing: {case}");
            }
            cells += 1;
        }
    }
    assert_eq!(cells, 10);
}
