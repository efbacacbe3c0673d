"""schemathesis hooks for scripts/fuzz-api (loaded through SCHEMATHESIS_HOOKS).

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


@schemathesis.hook
def before_call(context, case, kwargs):
    parameters = case.path_parameters or {}
    if case.method.upper() == "DELETE" and parameters.get("file_id") == SEEDED:
        parameters["file_id"] = str(uuid.uuid4())
