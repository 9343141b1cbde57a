"""The jobs API: start a job, follow its progress, download its result, cancel it."""

from __future__ import annotations

from typing import Any

from flask import Response, request, url_for
from flask.views import MethodView
from marshmallow import ValidationError

from app.config import current_settings
from app.core.api import Blueprint, accepts_form_data, links
from app.core.auth import current_principal
from app.core.errors import ValidationFailed
from app.core.limits import per_caller
from app.core.schemas import page_meta
from app.extensions import db
from app.idempotency.decorator import idempotent
from app.jobs import service
from app.jobs.models import Job as JobModel
from app.jobs.schemas import (
    ImportUpload,
    Job,
    JobCreate,
    JobPage,
    JobQueryArgs,
    TaskExport,
)

blp = Blueprint(
    "jobs",
    __name__,
    url_prefix="/jobs",
    description=(
        "Background jobs on your tasks: export, import, bulk update. A job answers 202 at once; "
        "follow it at its Location until it has succeeded, failed or been cancelled."
    ),
)

JOB_ID = "/<int(max=9223372036854775807):job_id>"
_LOCATION = {"Location": {"description": "URL of the job", "schema": {"type": "string"}}}
CREATE_BODY = {
    "required": True,
    "description": (
        "tasks.export and tasks.bulk_update as JSON; tasks.import as a multipart/form-data "
        "upload (fields `type` and `file`)."
    ),
    "content": {
        "application/json": {
            "schema": JobCreate,
            "example": {"type": "tasks.export", "params": {"format": "csv", "status": "todo"}},
        },
        "multipart/form-data": {"schema": ImportUpload},
    },
}
RESULT_RESPONSES = {
    "200": {
        "description": "The result file, as an attachment",
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": TaskExport},
        },
    }
}


def _job_headers(job: Any) -> dict[str, str]:
    return {"Location": url_for("jobs.JobItem", job_id=job.id)}


@blp.route("")
class Jobs(MethodView):
    """Your jobs."""

    # POST takes JSON, or a multipart upload for tasks.import (the 415 guard lets both in).
    decorators = [accepts_form_data]

    @blp.auth()
    @blp.arguments(JobQueryArgs, location="query")
    @blp.response(200, JobPage)
    @blp.errors(422)
    @blp.doc(operationId="listJobs")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List your jobs, newest first."""
        items, total = service.list_jobs(
            db.session(),
            owner_id=current_principal().user_id,
            page=args["page"],
            page_size=args["page_size"],
            state=args.get("state"),
            job_type=args.get("type"),
        )
        return {
            "items": items,
            "meta": page_meta(page=args["page"], page_size=args["page_size"], total=total),
        }

    @blp.limit(per_caller("RATELIMIT_JOB_CREATE_PER_USER"))
    @blp.auth()
    @blp.response(202, Job, headers=_LOCATION)
    @blp.errors(400, 409, 413, 415, 422)
    @blp.doc(
        operationId="createJob",
        requestBody=CREATE_BODY,
        responses={
            202: {
                "links": links(
                    "getJob", "cancelJob", "downloadJobResult", job_id="$response.body#/id"
                )
            }
        },
    )
    @idempotent("createJob", JobModel, headers=_job_headers)
    def post(self) -> tuple[Any, dict[str, str]]:
        """Start a job (export, import or bulk update of your tasks)."""
        job_type, params, upload = _job_request()
        job = service.create_job(
            db.session(),
            owner_id=current_principal().user_id,
            job_type=job_type,
            params=params,
            upload=upload,
        )
        return job, _job_headers(job)


@blp.route(JOB_ID)
class JobItem(MethodView):
    """One of your jobs."""

    @blp.auth()
    @blp.response(200, Job)
    @blp.errors(404)
    @blp.doc(operationId="getJob")
    def get(self, job_id: int) -> Any:
        """Get a job: its state, progress and result summary."""
        return service.get_job(db.session(), owner_id=current_principal().user_id, job_id=job_id)

    @blp.auth()
    @blp.response(200, Job, description="Cancelled (it was queued, or was already cancelled)")
    @blp.alt_response(
        202, schema=Job, description="Cancel requested: the job stops at its next step"
    )
    @blp.errors(404, 409)
    @blp.doc(operationId="cancelJob")
    def delete(self, job_id: int) -> tuple[Any, int]:
        """Cancel a job (a running one stops at its next progress step)."""
        job = service.cancel_job(db.session(), owner_id=current_principal().user_id, job_id=job_id)
        return job, 200 if job.finished_at is not None else 202


@blp.route(f"{JOB_ID}/result")
class JobResult(MethodView):
    """The file a job produced."""

    @blp.auth()
    @blp.errors(404, 409, 410)
    @blp.doc(operationId="downloadJobResult", responses=RESULT_RESPONSES)
    def get(self, job_id: int) -> Response:
        """Download the result file of a succeeded job."""
        result = service.get_result_file(
            db.session(), owner_id=current_principal().user_id, job_id=job_id
        )
        response = Response(result.data, content_type=result.content_type)
        response.headers.set("Content-Disposition", "attachment", filename=result.filename)
        response.headers["Cache-Control"] = "private, no-store"
        return response


def _job_request() -> tuple[str, dict[str, Any], service.Upload | None]:
    """(type, params, upload) from a JSON body or a multipart/form-data upload."""
    if request.mimetype != "multipart/form-data":
        values = blp.ARGUMENTS_PARSER.parse(JobCreate(), request, location="json")
        return values["type"], values["params"], None
    form: dict[str, Any] = {**request.form.to_dict(), **request.files.to_dict()}
    try:
        loaded = ImportUpload().load(form)
    except ValidationError as error:
        raise ValidationFailed(errors={"form": error.messages}) from None
    upload = loaded["file"]
    # One byte past the limit is enough to know the file is too large.
    data = upload.stream.read(current_settings().JOB_MAX_UPLOAD_BYTES + 1)
    return (
        loaded["type"],
        {},
        service.Upload(
            filename=upload.filename or "upload.csv",
            content_type=upload.mimetype or "text/csv",
            data=data,
        ),
    )
