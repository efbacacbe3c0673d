"""schemathesis hooks for scripts/fuzz-api (loaded through SCHEMATHESIS_HOOKS).

`PUT /v1/tenants/{tenant_id}/settings` is sent with the platform's token (FUZZ_PLATFORM_TOKEN).

The /parts operations are pinned to the multipart upload scripts/fuzz-api seeds
(FUZZ_MULTIPART_FILE; scripts/fuzz-api.toml). schemathesis also reuses that id for other
operations that take a file id, and a DELETE of it would leave /parts nothing but 404s for the
rest of the run. So a DELETE of the seeded upload is sent for an id nobody has instead: it is
answered the documented 404, and every other call, DELETE included, is left as generated.
"""

import os
import uuid

import schemathesis

SEEDED = os.environ["FUZZ_MULTIPART_FILE"]
PLATFORM = os.environ["FUZZ_PLATFORM_TOKEN"]
SERVICE = os.environ["FUZZ_TOKEN"]


@schemathesis.hook
def before_call(context, case, kwargs):
    # Only the platform sets a tenant's settings: with the tenant service's token every PUT
    # would stop at 403, and the settings validator would never be fuzzed.
    if case.method.upper() == "PUT" and case.path.endswith("/settings"):
        # Only where the tenant service's token is sent: the checks that send no token or a bad
        # one must keep doing so.
        headers = case.headers or {}
        for name in list(headers):
            if name.lower() == "authorization" and headers[name] == f"Bearer {SERVICE}":
                headers[name] = f"Bearer {PLATFORM}"
    parameters = case.path_parameters or {}
    if case.method.upper() == "DELETE" and parameters.get("file_id") == SEEDED:
        parameters["file_id"] = str(uuid.uuid4())

