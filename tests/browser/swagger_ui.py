"""Driving Swagger UI as a person does, through selectors that held across Swagger UI 4 and 5."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Locator, Page, expect

# Generous: a loaded CI machine may take seconds to hash a password or render the document.
STEP_TIMEOUT_MS = 30_000


class Operation:
    """One operation block (``#operations-<tag>-<operationId>``) of the Swagger UI page."""

    def __init__(self, page: Page, tag: str, operation_id: str) -> None:
        self.page = page
        self.block = page.locator(f"#operations-{tag}-{operation_id}")

    def try_it_out(self) -> Operation:
        """Expand the block and switch it to editable ("Try it out")."""
        expect(self.block).to_be_visible(timeout=STEP_TIMEOUT_MS)
        self.block.locator(".opblock-summary-control").click()  # every block starts folded
        self.block.locator("button.try-out__btn").click()
        expect(self.block.locator("button.execute")).to_be_visible(timeout=STEP_TIMEOUT_MS)
        return self

    def type_body(self, body: dict[str, Any]) -> Operation:
        """Replace the example request body with ``body`` (as JSON)."""
        self.block.locator("textarea.body-param__text").fill(json.dumps(body, indent=2))
        return self

    def clear_optional_parameters(self, keep: frozenset[str] = frozenset()) -> Operation:
        """Empty every parameter Swagger UI prefilled from its example, except ``keep``."""
        rows = self.block.locator("table.parameters tr[data-param-name]")
        for index in range(rows.count()):
            row = rows.nth(index)
            if row.get_attribute("data-param-name") in keep:
                continue
            for field in row.locator("input[type='text']").all():
                field.fill("")
            for select in row.locator("select").all():
                select.select_option("")
        return self

    def execute(self, expected_status: int) -> Locator:
        """Press Execute; wait for the live response with ``expected_status``; its body cell."""
        self.block.locator("button.execute").click()
        response = self.block.locator(".live-responses-table tr.response")
        status = response.locator(".response-col_status")
        description = response.locator(".response-col_description")
        expect(status).to_be_visible(timeout=STEP_TIMEOUT_MS)
        actual = status.inner_text().strip()
        assert actual == str(expected_status), f"{actual}: {description.inner_text()}"
        return description.locator(".highlight-code code").first

    def response_json(self, expected_status: int) -> Any:
        """Execute and parse the live response body as JSON."""
        return json.loads(self.execute(expected_status).inner_text())

    def collapse(self) -> None:
        """Fold the block again: fewer open blocks for Swagger UI to re-render, a tidier page."""
        self.block.locator(".opblock-summary-control").click()
        expect(self.block.locator("button.execute")).to_be_hidden(timeout=STEP_TIMEOUT_MS)


def authorize(page: Page, token: str) -> None:
    """Paste a bearer token into the "Authorize" dialog, apply it and close the dialog."""
    page.locator(".auth-wrapper button.authorize").click()
    modal = page.locator(".modal-ux")
    modal.locator("input[aria-label='auth-bearer-value']").fill(token)
    modal.locator("button.modal-btn.authorize").click()
    modal.locator("button.btn-done").click()
    expect(modal).to_be_hidden(timeout=STEP_TIMEOUT_MS)
    expect(page.locator(".auth-wrapper button.authorize")).to_have_class(
        "btn authorize locked", timeout=STEP_TIMEOUT_MS
    )
