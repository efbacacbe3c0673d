//! Who is asking, where a file lives, and the permission rule between them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, TenantId};

/// The verified identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An enrolled device of a tenant (its token carries `device_id`).
    Device {
        /// The device's tenant.
        tenant: TenantId,
        /// The device itself.
        device: DeviceId,
    },
    /// A backend service acting for a whole tenant (no `device_id`, scope `files:admin`).
    TenantService {
        /// The tenant it acts for.
        tenant: TenantId,
    },
    /// The platform itself (no `device_id`, scope `files:platform`, its `tenant_id` ignored):
    /// every tenant's settings and usage, and no file at all.
    Platform,
}

impl Principal {
    /// The tenant the principal belongs to; none for the platform.
    #[must_use]
    pub const fn tenant(&self) -> Option<TenantId> {
        match self {
            Self::Device { tenant, .. } | Self::TenantService { tenant } => Some(*tenant),
            Self::Platform => None,
        }
    }

    /// The device, for a device principal.
    #[must_use]
    pub const fn device(&self) -> Option<DeviceId> {
        match self {
            Self::Device { device, .. } => Some(*device),
            Self::TenantService { .. } | Self::Platform => None,
        }
    }
}

/// Where in a tenant a file lives: a device's root or the tenant root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Owner {
    /// `{tenant}/{device}`.
    Device(DeviceId),
    /// `{tenant}` itself (object keys use `_tenant`).
    Tenant,
}

impl Owner {
    /// The device, for a device root.
    #[must_use]
    pub const fn device(&self) -> Option<DeviceId> {
        match self {
            Self::Device(d) => Some(*d),
            Self::Tenant => None,
        }
    }
}

/// A tenant plus a root within it: the `{scope}` of the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The tenant.
    pub tenant: TenantId,
    /// The root within the tenant.
    pub owner: Owner,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.owner {
            Owner::Device(d) => write!(f, "tenants/{}/devices/{d}", self.tenant),
            Owner::Tenant => write!(f, "tenants/{}", self.tenant),
        }
    }
}

/// What an operation does to a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Download, list, get metadata.
    Read,
    /// Upload, complete, delete.
    Write,
}

/// The principal may not perform that access on that scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{access:?} access to {scope} is not allowed for this principal")]
pub struct Forbidden {
    /// The scope that was refused.
    pub scope: Scope,
    /// The access that was refused.
    pub access: Access,
}

/// The brief's permission table.
///
/// | principal | own device root | another device's root | tenant root | another tenant |
/// |---|---|---|---|---|
/// | device | read + write | no | read | no |
/// | tenant service | read + write | read + write | read + write | no |
/// | platform | no | no | no | no |
///
/// # Errors
/// [`Forbidden`] for every "no" cell.
pub fn authorize(principal: &Principal, scope: Scope, access: Access) -> Result<(), Forbidden> {
    let allowed = principal.tenant() == Some(scope.tenant)
        && match (principal, scope.owner, access) {
            (Principal::TenantService { .. }, _, _) => true,
            (Principal::Platform, _, _) => false,
            (Principal::Device { device, .. }, Owner::Device(owner), _) => *device == owner,
            (Principal::Device { .. }, Owner::Tenant, Access::Read) => true,
            (Principal::Device { .. }, Owner::Tenant, Access::Write) => false,
        };
    if allowed {
        Ok(())
    } else {
        Err(Forbidden { scope, access })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn permission_table() {
        let t1 = TenantId::from_uuid(Uuid::from_u128(1));
        let t2 = TenantId::from_uuid(Uuid::from_u128(2));
        let d1 = DeviceId::from_uuid(Uuid::from_u128(11));
        let d2 = DeviceId::from_uuid(Uuid::from_u128(12));
        let device = Principal::Device { tenant: t1, device: d1 };
        let service = Principal::TenantService { tenant: t1 };
        let own = Scope {
            tenant: t1,
            owner: Owner::Device(d1),
        };
        let other_device = Scope {
            tenant: t1,
            owner: Owner::Device(d2),
        };
        let tenant_root = Scope {
            tenant: t1,
            owner: Owner::Tenant,
        };
        let other_tenant_device = Scope {
            tenant: t2,
            owner: Owner::Device(d1),
        };
        let other_tenant_root = Scope {
            tenant: t2,
            owner: Owner::Tenant,
        };

        // (principal, scope, read allowed, write allowed)
        let table = [
            (&device, own, true, true),
            (&device, other_device, false, false),
            (&device, tenant_root, true, false),
            (&device, other_tenant_device, false, false),
            (&device, other_tenant_root, false, false),
            (&service, own, true, true),
            (&service, other_device, true, true),
            (&service, tenant_root, true, true),
            (&service, other_tenant_device, false, false),
            (&service, other_tenant_root, false, false),
            (&Principal::Platform, own, false, false),
            (&Principal::Platform, tenant_root, false, false),
        ];
        for (principal, scope, read, write) in table {
            assert_eq!(
                authorize(principal, scope, Access::Read).is_ok(),
                read,
                "{principal:?} read {scope}"
            );
            assert_eq!(
                authorize(principal, scope, Access::Write).is_ok(),
                write,
                "{principal:?} write {scope}"
            );
        }
    }
}
