"""`chipledger demo`: the 2022-2025 export-control story of domain-facts.md, recorded in the
ledger, then each firm's posture over time.

Real instruments and chips are modelled as domain.md's simplified rule kinds (not legal
advice). Where the story needs a violation, the firms involved are fictional
(`zhiyuan-compute`, `lingxi-trading`), not real companies. Running it twice appends nothing
the second time: every step carries an idempotency key.
"""

import json
from datetime import date
from typing import Any

from rich.console import Console
from rich.table import Table

from api.appends import parse_batch_line
from api.bodies import request_fingerprint
from domain.times import format_time
from infra.bootstrap import Container
from infra.keys import command_line_user
from infra.posture import posture_service
from infra.runner import ProjectionRunner
from infra.seal import RecordedBy
from infra.service import AppendService
from projections.posture import PostureService
from projections.views import Reading

Line = dict[str, Any]

US_AC_CHIPS_2022 = {"any_of": [{"min_tpp": 4800}], "origin_countries": ["US"]}
US_AC_CHIPS_2023 = {"any_of": [{"min_tpp": 4800},
                               {"min_tpp": 1600, "min_performance_density": 5.92}],
                    "origin_countries": ["US"]}
TIER_ONE = ["US", "AU", "BE", "CA", "DK", "FI", "FR", "DE", "IE", "IT", "JP", "NL", "NZ", "NO",
            "KR", "ES", "SE", "TW", "GB"]


def _create(kind: str, **body: Any) -> Line:
    return {"type": kind, "body": body}


def _act(kind: str, action: str, record_id: str, **body: Any) -> Line:
    return {"type": f"{kind}/{action}", "id": record_id, "body": body}


def story() -> list[tuple[str, list[Line]]]:
    """The story in the order it is recorded: (what happened, the lines recorded)."""
    return [
        ("Chips, firms and data centres", [
            _create("chip-models", id="nvidia-a100", vendor="NVIDIA", origin_country="US",
                    tpp=4992, performance_density=6.0),
            _create("chip-models", id="nvidia-h100", vendor="NVIDIA", origin_country="US",
                    tpp=15830, performance_density=19.4, memory_bandwidth_gbps=3350),
            _create("chip-models", id="nvidia-h20", vendor="NVIDIA", origin_country="US",
                    tpp=2368, performance_density=2.9, memory_bandwidth_gbps=4000),
            # Ascend figures are approximate (domain-facts.md marks them partly verified).
            _create("chip-models", id="huawei-ascend-910b", vendor="Huawei",
                    origin_country="CN", tpp=5100, performance_density=7.0),
            _create("firms", id="alibaba", name="Alibaba Group", hq_country="CN"),
            _create("firms", id="alibaba-sg", name="Alibaba Cloud (Singapore)", hq_country="SG",
                    parent_firm_id="alibaba"),
            _create("firms", id="bytedance", name="ByteDance", hq_country="CN"),
            _create("firms", id="bytedance-sg", name="BytePlus (Singapore)", hq_country="SG",
                    parent_firm_id="bytedance"),
            _create("firms", id="deepseek", name="DeepSeek", hq_country="CN"),
            _create("firms", id="johor-compute", name="Johor Compute Sdn Bhd", hq_country="MY"),
            _create("firms", id="zhiyuan-compute", name="Zhiyuan Compute (fictional)",
                    hq_country="CN"),
            _create("firms", id="lingxi-trading", name="Lingxi Trading (fictional)",
                    hq_country="HK"),
            _create("data-centres", id="sg-tuas", name="Tuas DC", country="SG",
                    operator="Tuas Data Centres", operator_hq_country="SG"),
            _create("data-centres", id="my-johor", name="Johor Campus 1", country="MY",
                    operator="Johor Compute Sdn Bhd", operator_hq_country="MY"),
            _create("data-centres", id="cn-hangzhou", name="Hangzhou Region", country="CN",
                    operator="Alibaba Cloud", operator_hq_country="CN"),
            _create("data-centres", id="cn-ulanqab", name="Ulanqab Campus", country="CN",
                    operator="Inner Mongolia Compute", operator_hq_country="CN"),
        ]),
        ("US advanced-computing rules (2022, amended 2023) and China's PIPL transfer rules", [
            _create("regulations", id="us-bis-ac-2022", authority="US-BIS",
                    title="Advanced computing and semiconductor manufacturing items",
                    citation="87 FR 62186", published_on="2022-10-13",
                    effective_from="2022-10-07",
                    rule={"kind": "export_licence", "chips": US_AC_CHIPS_2022,
                          "to_countries": ["CN", "HK", "MO"], "licence_authority": "US-BIS"}),
            _act("regulations", "amendments", "us-bis-ac-2022", effective_from="2023-11-17",
                 rule={"kind": "export_licence", "chips": US_AC_CHIPS_2023,
                       "to_countries": ["CN", "HK", "MO"],
                       "consignee_hq_countries": ["CN", "MO"], "licence_authority": "US-BIS"}),
            _create("regulations", id="cn-pipl-sensitive-export", authority="CN-CAC",
                    title="PIPL Art. 38: export of sensitive personal information",
                    citation="PIPL Art. 38; CBDF Provisions 2024", effective_from="2021-11-01",
                    rule={"kind": "data_localisation", "data_subject_countries": ["CN"],
                          "sensitive_only": True,
                          "accepted_mechanisms": ["security_assessment"]}),
        ]),
        ("Imports before the H20 curbs: H100s into Malaysia, H20s into China", [
            _create("shipments", id="ship-h100-johor-2024", chip_model="nvidia-h100",
                    quantity=4096, exporter="NVIDIA", from_country="US", to_country="MY",
                    consignee_firm_id="johor-compute", shipped_on="2024-06-01"),
            _create("shipments", id="ship-h20-2025-03", chip_model="nvidia-h20", quantity=800,
                    exporter="NVIDIA", from_country="US", to_country="CN",
                    consignee_firm_id="alibaba", shipped_on="2025-03-01"),
        ]),
        ("2025: the AI Diffusion rule, the H20 licence requirement, the rescission and the "
         "IaaS red flag", [
            _create("regulations", id="us-bis-ai-diffusion-2025", authority="US-BIS",
                    title="Framework for Artificial Intelligence Diffusion",
                    citation="90 FR 4544", published_on="2025-01-15",
                    effective_from="2025-01-13", compliance_from="2025-05-15",
                    rule={"kind": "remote_compute_access", "lessee_hq_countries": ["CN", "MO"],
                          "exempt_dc_countries": TIER_ONE, "chips": US_AC_CHIPS_2023,
                          "severity": "violation", "licence_authority": "US-BIS"}),
            _create("regulations", id="us-bis-h20-2025", authority="US-BIS",
                    title="H20 is-informed licence requirement",
                    citation="BIS is-informed letter to NVIDIA, 2025-04-09",
                    effective_from="2025-04-09",
                    rule={"kind": "export_licence", "chips": {"models": ["nvidia-h20"]},
                          "to_countries": ["CN", "HK", "MO"], "consignee_hq_countries": ["CN"],
                          "licence_authority": "US-BIS"}),
            _act("regulations", "rescission", "us-bis-ai-diffusion-2025",
                 effective_from="2025-05-13", announced_on="2025-05-13",
                 reason="BIS announces rescission and non-enforcement"),
            _create("regulations", id="us-bis-iaas-red-flag-2025", authority="US-BIS",
                    title="Guidance: IaaS training for D:5/Macau-headquartered firms",
                    citation="BIS policy statement, 2025-05-13", effective_from="2025-05-13",
                    rule={"kind": "remote_compute_access", "lessee_hq_countries": ["CN", "MO"],
                          "exempt_dc_countries": ["US"], "chips": US_AC_CHIPS_2023,
                          "purposes": ["training"], "severity": "attention"}),
        ]),
        ("Overseas training: leases in Malaysia and Singapore; DeepSeek at home", [
            _create("leases", id="alibaba-johor-h100", firm_id="alibaba-sg",
                    data_centre_id="my-johor", chip_model="nvidia-h100", chip_count=2048,
                    starts_on="2025-04-01", ends_on="2025-09-30", purposes=["training"]),
            _create("leases", id="bytedance-tuas-h100", firm_id="bytedance-sg",
                    data_centre_id="sg-tuas", chip_model="nvidia-h100", chip_count=1024,
                    starts_on="2025-02-01", ends_on="2026-01-31",
                    purposes=["training", "inference"]),
            _create("leases", id="deepseek-ulanqab-ascend", firm_id="deepseek",
                    data_centre_id="cn-ulanqab", chip_model="huawei-ascend-910b",
                    chip_count=1024, starts_on="2025-01-01", purposes=["training"]),
            _act("leases", "due-diligence", "alibaba-johor-h100", completed_on="2025-06-20",
                 reference="DD-2025-117: end use screened, no US-person support"),
        ]),
        ("Shipments after the curbs, Malaysia's permit rule, a licence at last", [
            _create("shipments", id="ship-h20-2025-05", chip_model="nvidia-h20", quantity=600,
                    exporter="NVIDIA", from_country="US", to_country="CN",
                    consignee_firm_id="zhiyuan-compute", shipped_on="2025-05-01"),
            _create("regulations", id="my-miti-stp-2025", authority="MY-MITI",
                    title="Strategic Trade Permit for US-origin high-performance AI chips",
                    citation="STA 2010 s.12; Directive No. 1/2025", effective_from="2025-07-14",
                    rule={"kind": "export_licence", "chips": US_AC_CHIPS_2023,
                          "from_countries": ["MY"], "licence_authority": "MY-MITI"}),
            _create("licences", id="bis-h20-alibaba", authority="US-BIS",
                    holder_firm_id="alibaba", chip_models=["nvidia-h20"],
                    destination_countries=["CN"], valid_from="2025-08-08"),
            _create("shipments", id="ship-h20-2025-09", chip_model="nvidia-h20", quantity=400,
                    exporter="NVIDIA", from_country="US", to_country="CN",
                    consignee_firm_id="alibaba", shipped_on="2025-09-01"),
            _create("shipments", id="ship-h100-johor-reexport", chip_model="nvidia-h100",
                    quantity=256, exporter="Johor Compute Sdn Bhd", from_country="MY",
                    to_country="CN", consignee_firm_id="lingxi-trading",
                    shipped_on="2025-07-01"),
        ]),
        ("Fine-tuning on Chinese bank customers' data in Singapore, then moved home", [
            _create("processing-activities", id="alibaba-sg-bank-ft", firm_id="alibaba-sg",
                    purpose="fine_tuning", data_subject_countries=["CN"], sensitive=True,
                    subject_count=50000, data_centre_id="sg-tuas", starts_on="2025-06-01"),
            _act("processing-activities", "changes", "alibaba-sg-bank-ft",
                 effective_from="2025-10-01", data_centre_id="cn-hangzhou"),
            _create("processing-activities", id="bytedance-cn-ft", firm_id="bytedance",
                    purpose="fine_tuning", data_subject_countries=["CN"], sensitive=True,
                    location_country="CN", starts_on="2025-03-01"),
        ]),
        ("Late records: a re-export's date corrected, ByteDance's due diligence found", [
            _act("shipments", "corrections", "ship-h100-johor-reexport",
                 shipped_on="2025-08-01", reason="customs record shows 1 August"),
            _act("leases", "due-diligence", "bytedance-tuas-h100", completed_on="2025-06-01",
                 reference="DD-2025-088, filed late"),
        ]),
    ]


def record_story(container: Container, recorded_by: RecordedBy | None = None
                 ) -> list[tuple[str, int, int]]:
    """Append each step as one batch (idempotent for its sender, by default the command line's
    user); returns (step, events, last position)."""
    sender = recorded_by or command_line_user()
    service = AppendService(container)
    done = []
    for number, (title, lines) in enumerate(story(), start=1):
        raw = "\n".join(json.dumps(line) for line in lines).encode()
        appends = [parse_batch_line(json.dumps(line), n) for n, line in enumerate(lines, 1)]
        answer = service.append(appends, recorded_by=sender, batch=True,
                                idempotency_key=f"chipledger-demo-{number}",
                                fingerprint=request_fingerprint("DEMO", str(number), raw))
        positions = [r["position"] for r in answer.body["results"]]
        done.append((title, answer.body["appended"], max(positions)))
    return done


YEARS = (date(2022, 10, 1), date(2026, 2, 1))
DEMO_FIRMS = ("alibaba", "alibaba-sg", "bytedance", "bytedance-sg", "deepseek",
              "zhiyuan-compute", "lingxi-trading")
_STYLE = {"compliant": "green", "attention": "yellow", "violation": "bold red"}


def run_demo(container: Container, console: Console) -> None:
    steps = record_story(container)
    for title, appended, position in steps:
        console.print(f"[dim]recorded[/dim] {title} [dim]({appended} new events, through "
                      f"position {position})[/dim]")
    ProjectionRunner(container).project_to_head()
    service = posture_service(container)
    head = container.store.head()
    now = head.position if head else 0
    console.print()
    for firm in DEMO_FIRMS:
        _print_firm(console, service, firm, now)
    _print_restatement(console, service, steps)


def _print_firm(console: Console, service: PostureService, firm: str, position: int) -> None:
    pieces = service.timeline(firm, position, *YEARS).intervals
    table = Table(title=f"{firm}: posture over time", title_justify="left")
    table.add_column("from")
    table.add_column("to (exclusive)")
    table.add_column("status")
    table.add_column("findings in that time")
    rows = service.findings.findings(position=position, firm_id=firm)
    for start, end, status in pieces:
        holding = [f for f in rows
                   if f.valid_from < end and (f.valid_to is None or f.valid_to > start)]
        reasons = "\n".join(f"{f.regulation_id}: {f.explanation}" for f in holding) or "-"
        table.add_row(str(start), str(end), f"[{_STYLE[status.value]}]{status.value}[/]",
                      reasons)
    console.print(table)


def _print_restatement(console: Console, service: PostureService,
                       steps: list[tuple[str, int, int]]) -> None:
    late = steps[-1][2]
    before_late = steps[-2][2]
    day = date(2025, 7, 1)
    entry = service.log.entries(after=late - 1, limit=1)[0]
    before = service.posture("bytedance-sg", _moment(day, before_late, service))
    after = service.posture("bytedance-sg", _moment(day, late, service))
    console.print(
        f"\n[bold]Restatement:[/] bytedance-sg on {day} was [{_STYLE[before.status.value]}]"
        f"{before.status.value}[/] as known at position {before_late}, and is "
        f"[{_STYLE[after.status.value]}]{after.status.value}[/] as known at position {late} "
        f"(recorded {format_time(entry.recorded_at)}): its due diligence was filed late.\n"
        "Ask the API with known_at to see either answer: GET /v1/firms/bytedance-sg/posture"
        "?as_of=2025-07-01&known_at=..."
    )


def _moment(day: date, position: int, service: PostureService) -> Reading:
    entry = service.log.entries(after=position - 1, limit=1)[0]
    return Reading(day, entry.recorded_at, position)
