"""``junit.xml``: one test case per gate, so CI systems show gates like tests.

Every string from config or data is made XML 1.0-safe before writing: characters XML forbids
(controls, U+FFFE/U+FFFF, lone surrogates) would make the whole file unparseable.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from auditkit.report.format import describe_gate, headline, visible_controls
from auditkit.results import AuditResult


def to_xml(result: AuditResult) -> str:
    failures = sum(g.blocks for g in result.gates)
    skipped = sum(g.status == "inconclusive" and not g.blocks for g in result.gates)
    suite = ET.Element(
        "testsuite",
        name=f"auditkit.{result.audit}",
        tests=str(len(result.gates)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{result.provenance.duration_s:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="verdict", value=headline(result))
    for gate in result.gates:
        case = ET.SubElement(suite, "testcase", classname=f"auditkit.{gate.id.split('.')[0]}", name=gate.id)
        text = describe_gate(gate)
        if gate.blocks:
            ET.SubElement(case, "failure", message=text, type=gate.status).text = text
        elif gate.status == "inconclusive":
            ET.SubElement(case, "skipped", message=text)
        ET.SubElement(case, "system-out").text = text
    ET.SubElement(suite, "system-out").text = f"Verdict: {headline(result)}"
    suites = ET.Element("testsuites", name="auditkit", tests=str(len(result.gates)), failures=str(failures))
    suites.append(suite)
    _xml_safe(suites)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _xml_safe(root: ET.Element) -> None:
    for element in root.iter():
        element.attrib = {key: visible_controls(value) for key, value in element.attrib.items()}
        if element.text:
            element.text = visible_controls(element.text)


def write(result: AuditResult, path: Path) -> None:
    path.write_text(to_xml(result), encoding="utf-8")
