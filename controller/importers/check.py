"""Every imported document must be one Vigil accepts: a document the models refuse is a
source value the importer let through, reported here against the source rather than left
for `ha apply` to find."""

from __future__ import annotations

from controller.api.decode import SchemaError, decode
from controller.importers.result import ImportFailed, ImportResult


def check_documents(result: ImportResult) -> None:
    problems: list[str] = []
    for document in result.documents:
        try:
            decode(document.data)
        except SchemaError as exc:
            for problem in exc.problems:
                where = f"{document.source}: " if document.source else ""
                problems.append(
                    f"{where}{document.kind}/{document.name}: {problem.dotted}: {problem.message}"
                )
    if problems:
        raise ImportFailed(
            "the imported configuration holds values Vigil refuses; fix them in the source "
            "files and import again",
            problems,
        )
