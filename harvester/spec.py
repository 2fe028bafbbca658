"""The job spec: what to crawl and how, validated once at the edge."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

from harvester.errors import ConfigurationError
from harvester.patterns import compile_pattern

DEFAULT_TRACKING_PARAMS = (
    "utm_*",
    "gclid",
    "fbclid",
    "msclkid",
    "mc_cid",
    "mc_eid",
    "_ga",
    "yclid",
    "igshid",
)
DEFAULT_BAN_MARKERS = (
    # Signatures of challenge interstitials (Cloudflare, DataDome, PerimeterX), never of the
    # captcha widgets (g-recaptcha, h-captcha) ordinary pages embed in their forms.
    "/cdn-cgi/challenge-platform/",
    "cf-chl-",
    "cf-challenge",
    "captcha-delivery",
    "px-captcha",
    "Attention Required! | Cloudflare",
)
CHALLENGE_MAX_CHARS = 64_000
"""A page longer than this is content, whatever it quotes: interstitials are small."""


Short = Annotated[str, Field(max_length=500)]
"""A name, a marker, a header value: short by nature; a long one is a mistake or an attack."""
Pattern = Annotated[str, Field(max_length=2000)]


class _Section(BaseModel):
    # strict: a JSON `true` or `"5"` is not a number (lax mode would take them as 1 and 5).
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True
    )


class Scope(_Section):
    """Which URLs belong to the job."""

    allowed_domains: Annotated[list[Short], Field(max_length=10_000)] = []
    """Hosts the crawl may visit; empty means the seeds' hosts."""
    include_subdomains: bool = True
    """Also visit subdomains of `allowed_domains` (docs.example.org for example.org)."""
    max_depth: Annotated[int, Field(ge=0, le=100_000)] = 5
    """Links followed from a seed at most (a seed is depth 0)."""
    include: Annotated[list[Pattern], Field(max_length=100)] = []
    """Regexes (RE2 syntax); when given, a URL must match one."""
    exclude: Annotated[list[Pattern], Field(max_length=100)] = []
    """Regexes (RE2 syntax); a URL matching one is left out, whatever `include` says."""
    strip_tracking_params: bool = True
    """Drop the `tracking_params` from URLs before they are queued, so one page is one URL."""
    tracking_params: Annotated[list[Short], Field(max_length=1000)] = list(DEFAULT_TRACKING_PARAMS)
    """Query parameter names dropped from URLs; a trailing `*` matches a prefix."""
    sitemaps: bool = True
    """Read the sitemaps robots.txt lists and queue the URLs they name (within scope)."""

    @field_validator("include", "exclude")
    @classmethod
    def _regexes_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            compile_pattern(pattern)
        return patterns


class Limits(_Section):
    """Per-job and per-page budgets."""

    max_pages: Annotated[int, Field(ge=1, le=1_000_000_000)] = 10_000
    """URLs admitted to the job at most, across all hosts and workers; further ones are counted
    `frontier/rejected/max_pages`."""
    max_bytes_per_page: Annotated[int, Field(ge=1024, le=100 * 1024 * 1024)] = 10 * 1024 * 1024
    """A body larger than this (after decompression) is not kept: the URL is skipped
    `too-large`."""
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Whole-request limit in seconds: connection, headers and body."""
    connect_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Seconds to open a connection (TCP and TLS)."""
    read_timeout_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    """Seconds of silence allowed while reading a response."""
    max_redirects: Annotated[int, Field(ge=0, le=30)] = 10
    """Redirects followed within a host; longer chains fail `redirect/too-many`."""
    content_types: Annotated[list[Short], Field(max_length=100)] = [
        "text/html",
        "application/xhtml+xml",
    ]
    """Media types fetched whole; any other is skipped `content-type` after its headers."""
    global_concurrency: Annotated[int, Field(ge=1, le=10_000)] = 64
    """Requests in flight at once for the whole job, all hosts together."""
    max_duration_s: Annotated[float | None, Field(gt=0, le=90 * 86_400)] = None
    """Wall-clock limit of the crawl: then its pending URLs are skipped and the job builds."""


class Politeness(_Section):
    """How hard each domain may be hit."""

    requests_per_second: Annotated[float, Field(gt=0, le=1000)] = 1.0
    """Rate ceiling per host; several jobs on one host share the lowest of theirs."""
    concurrency_per_domain: Annotated[int, Field(ge=1, le=256)] = 2
    """Requests in flight at once per host."""
    respect_robots: bool = True
    """Obey robots.txt (RFC 9309): Disallow rules, Crawl-delay and Sitemap lines."""
    user_agent: Short = "HarvesterBot/1.0 (+https://github.com/harvester)"
    """The User-Agent header, and the agent robots.txt rules are matched against; give a contact
    URL or address."""
    max_retry_after_s: Annotated[float, Field(ge=0, le=3600)] = 300.0
    """A Retry-After longer than this is capped to it."""
    max_crawl_delay_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    """A robots.txt Crawl-delay longer than this cannot be honoured within a crawl: that
    origin's URLs are skipped `robots/crawl-delay` (as Nutch does), never waited for."""
    slow_response_s: Annotated[float, Field(gt=0)] = 5.0
    """Responses slower than this count as a latency signal and slow the domain down."""
    robots_patience_s: Annotated[float, Field(ge=0, le=86_400)] = 600.0
    """While a site's robots.txt answers 5xx, everything there is disallowed (RFC 9309) and
    its URLs wait, robots.txt being asked again now and then; past this long they are
    skipped `robots/unavailable`."""


class Retry(_Section):
    """Retry policy for transient failures."""

    max_attempts: Annotated[int, Field(ge=1, le=20)] = 4
    """Attempts per URL for transient failures (timeouts, resets, 429, 5xx), the first included."""
    backoff_initial_s: Annotated[float, Field(ge=0, le=600)] = 0.5
    """Wait before the second attempt; it doubles with each further one (with jitter)."""
    backoff_max_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    """Longest wait between two attempts."""


class Extraction(_Section):
    """How main text is taken out of a page (trafilatura, selectolax as the fallback)."""

    engine: Literal["trafilatura", "resiliparse"] = "trafilatura"
    """`resiliparse` (DCLM's extractor) is several times faster but gives no markdown, byline
    or date: see bench/quality.py for both engines' speed and word-level F1."""
    markdown: bool = False
    """Also keep the main text as markdown (a `markdown` column; trafilatura only)."""
    fast: bool = False
    """trafilatura's fast mode: no fallback extractors (see bench/extract.py for the trade)."""
    include_comments: bool = False
    """Keep the comment section of a page in its text."""
    include_tables: bool = True
    """Keep tables in the text."""
    extensive_date_search: bool = False
    """htmldate's extensive search (dateparser over the whole text): finds a date on more
    pages but doubles the cost of extraction; meta tags, `<time>` and URLs are read anyway."""
    time_budget_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    """Per-page budget in CPU seconds for the whole pipeline, link extraction included.
    Past half of it, trafilatura gives way to the cheap fallback (counted); past all of it
    the page's process is killed and the page dropped as `pipeline/timeout`. The largest
    page of the Python docs (2.5 MB) takes 4 s."""

    @model_validator(mode="after")
    def _markdown_needs_trafilatura(self) -> Extraction:
        if self.markdown and self.engine != "trafilatura":
            raise ValueError("markdown needs engine: trafilatura (resiliparse has no markdown)")
        return self


QUALITY_PRESETS: dict[str, dict[str, float]] = {
    # Chosen by measurement on the article pages of three documentation sites (bench/quality.py):
    # API references repeat their phrases and punctuate few lines, and still are good text.
    "sites": {
        "min_punctuated_line_ratio": 0.05,
        "min_alpha_word_ratio": 0.7,
        "max_duplicate_line_ratio": 0.4,
        "max_top_ngram_ratio": 0.3,
        "max_duplicate_ngram_ratio": 0.3,
    },
    # Gopher (Rae et al. 2021, table A1) and C4 as FineWeb applies them to broad web crawls.
    "web": {
        "min_punctuated_line_ratio": 0.12,
        "min_alpha_word_ratio": 0.8,
        "max_duplicate_line_ratio": 0.3,
        "max_top_ngram_ratio": 0.2,
        "max_duplicate_ngram_ratio": 0.15,
    },
}


class Quality(_Section):
    """Document-level rules (Gopher/C4 style); every drop is counted by rule. A `preset` sets
    the thresholds it names; a threshold given explicitly wins over the preset."""

    preset: Literal["sites", "web"] = "sites"
    """`sites` for crawling chosen sites (documentation, references, blogs), `web` for broad
    web crawls (Gopher/C4/FineWeb thresholds)."""
    min_words: Annotated[int, Field(ge=0)] = 50
    """Fewer words than this drops a document (`too_short`)."""
    max_words: Annotated[int, Field(ge=1)] = 200_000
    """More words than this drops a document (`too_long`)."""
    languages: list[str] = ["en"]
    """ISO 639-1 codes kept; empty keeps every language."""
    min_language_score: Annotated[float, Field(ge=0, le=1)] = 0.5
    """Language identification confidence (py3langid) below this drops a document (`language`)."""
    min_mean_word_length: Annotated[float, Field(ge=0)] = 3.0
    """Mean word length (characters) below this drops a document (`word_length`)."""
    max_mean_word_length: Annotated[float, Field(gt=0)] = 10.0
    """Mean word length (characters) above this drops a document (`word_length`)."""
    max_symbol_word_ratio: Annotated[float, Field(ge=0)] = 0.1
    """Ratio of `#` and ellipsis symbols to words above this drops a document (`symbols`)."""
    min_alpha_word_ratio: Annotated[float, Field(ge=0, le=1)] = 0.7
    """Share of words with at least one letter below this drops a document (`non_alpha`)."""
    max_bullet_line_ratio: Annotated[float, Field(ge=0, le=1)] = 0.9
    """Share of lines starting with a bullet above this drops a document (`bullets`)."""
    max_ellipsis_line_ratio: Annotated[float, Field(ge=0, le=1)] = 0.3
    """Share of lines ending in an ellipsis above this drops a document (`ellipsis`)."""
    min_punctuated_line_ratio: Annotated[float, Field(ge=0, le=1)] = 0.05
    """Share of lines ending in terminal punctuation (C4); menus and link lists fail it."""
    max_duplicate_line_ratio: Annotated[float, Field(ge=0, le=1)] = 0.4
    """Share of lines that repeat an earlier line (and of paragraphs, with the next field)."""
    max_duplicate_paragraph_ratio: Annotated[float, Field(ge=0, le=1)] = 0.3
    """Share of paragraphs that repeat an earlier one above this drops a document
    (`duplicate_paragraphs`)."""
    max_top_ngram_ratio: Annotated[float, Field(ge=0, le=1)] = 0.3
    """Characters covered by the most frequent 2-gram (3- and 4-grams scaled as in Gopher)."""
    max_duplicate_ngram_ratio: Annotated[float, Field(ge=0, le=1)] = 0.3
    """Characters in 5-grams that repeat an earlier one (10-grams scaled down as in Gopher)."""

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        preset = QUALITY_PRESETS.get(data.get("preset", "sites"), {})
        return {**preset, **data}


PiiAction = Literal["mask", "drop", "keep"]


class Pii(_Section):
    """What to do with each kind of personal data: mask it, drop the document, or keep it."""

    email: PiiAction = "mask"
    """Email addresses: `mask` replaces each with `<EMAIL>`, `drop` drops the document, `keep`
    leaves it."""
    phone: PiiAction = "mask"
    """Phone numbers (libphonenumber, in the page's regions): mask as `<PHONE>`, drop or keep."""
    ip: PiiAction = "mask"
    """IPv4 and IPv6 addresses: mask as `<IP>`, drop or keep."""
    card: PiiAction = "mask"
    """Payment card numbers (Luhn-checked): mask as `<CARD>`, drop or keep."""
    iban: PiiAction = "mask"
    """IBANs (checksum-validated): mask as `<IBAN>`, drop or keep."""
    ssn: PiiAction = "mask"
    """US social security numbers: mask as `<SSN>`, drop or keep."""
    national_id: PiiAction = "mask"
    """For the countries in `national_ids` only."""
    phone_region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "US"
    """Region for numbers written without a country code, besides the page's own hints (its
    `lang` region, its domain's country code)."""
    national_ids: list[Literal["DE", "ES", "FR", "IT", "NL", "PL"]] = []
    """Opt-in national identity numbers, checksum-validated by python-stdnum: DE tax id
    (IdNr), ES DNI/NIE, FR NIR, IT codice fiscale, NL BSN, PL PESEL."""


class Dedup(_Section):
    """Exact and MinHash near-duplicate removal."""

    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.8
    """Estimated Jaccard similarity of shingle sets at or above which two documents are near
    duplicates."""
    num_perm: Annotated[int, Field(ge=16, le=1024)] = 128
    """MinHash permutations per signature: more is more precise and slower."""
    ngram: Annotated[int, Field(ge=1, le=32)] = 5
    """Words per shingle."""
    action: Literal["remove", "keep"] = "remove"
    """`keep` leaves duplicates in place, marked by `cluster_id` (splits still group them)."""


class Pipeline(_Section):
    """Stages every fetched page goes through before it can reach a snapshot."""

    extract: Extraction = Extraction()
    """Main-text extraction."""
    quality: Quality = Quality()
    """Document quality rules."""
    pii: Pii = Pii()
    """Personal data handling."""
    dedup: Dedup = Dedup()
    """Duplicate removal, within the job and against the dataset's published versions."""


class Splits(_Section):
    """Split ratios and grouping; assignment is stable across versions."""

    train: Annotated[float, Field(ge=0, le=1)] = 0.98
    """Share of groups assigned to train."""
    validation: Annotated[float, Field(ge=0, le=1)] = 0.01
    """Share of groups assigned to validation."""
    test: Annotated[float, Field(ge=0, le=1)] = 0.01
    """Share of groups assigned to test."""
    group_by: Literal["url", "domain", "cluster"] = "cluster"
    """What stays together in one split: a near-duplicate `cluster` (the default), a `domain`, or
    each `url` alone."""
    overlap: Annotated[float, Field(gt=0, le=1)] | None = 0.05
    """Decontamination (`docs/dataset-policy.md`): two documents sharing this share of the
    smaller one's 13-grams are kept in one split, as near duplicates are; null turns it off."""
    salt: Short | None = None
    """Fixed at the dataset's first version; later specs cannot change it."""

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> Splits:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1, not {total:g}")
        return self


class Shards(_Section):
    """Parquet layout of a snapshot."""

    max_bytes: Annotated[int, Field(ge=1024, le=16 * 1024**3)] = 256 * 1024 * 1024
    """A Parquet shard is closed past this size and the next begun."""
    row_group_bytes: Annotated[int, Field(ge=1024, le=4 * 1024**3)] = 96 * 1024 * 1024
    """Target size of a Parquet row group (uncompressed)."""
    shuffle_seed: int = 0
    """Seed of the row order within each split (rows are shuffled so shards are not sorted by
    site)."""


class JobSpec(_Section):
    """A crawl job; everything but `seeds` and `dataset` has defaults."""

    dataset: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
    """The dataset the job builds the next version of: letters, digits, `.`, `_`, `-`."""
    seeds: Annotated[list[HttpUrl], Field(min_length=1, max_length=1_000_000)]
    """Start URLs (http or https)."""
    scope: Scope = Scope()
    """Which URLs belong to the job."""
    limits: Limits = Limits()
    """Per-job and per-page budgets."""
    politeness: Politeness = Politeness()
    """How hard each host may be hit."""
    retry: Retry = Retry()
    """Retry policy for transient failures."""
    proxy_pool: Short | None = None
    """A stored proxy pool (`PUT /v1/proxy-pools/{name}`) to fetch through; null fetches
    directly."""
    ban_markers: Annotated[list[Short], Field(max_length=100)] = list(DEFAULT_BAN_MARKERS)
    """Body substrings that mark a challenge interstitial (in a page of at most
    `CHALLENGE_MAX_CHARS`): through a proxy, it is banned for the domain."""
    conditional_requests: bool = True
    """Send If-None-Match / If-Modified-Since when the dataset has seen the URL before."""
    pipeline: Pipeline = Pipeline()
    """Extraction, quality rules, personal data and dedup."""
    splits: Splits = Splits()
    """Train/validation/test ratios and grouping."""
    shards: Shards = Shards()
    """Parquet layout of the snapshot."""

    def fingerprint(self) -> str:
        """A stable hash of the spec, used to find an unfinished job to resume."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_spec_file(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON spec file into a dict (validation happens in `JobSpec`)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read spec {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"spec {path} must be a mapping")
    return data


def parse_spec(data: dict[str, Any]) -> JobSpec:
    """Validate a spec, turning pydantic's errors into one readable `ConfigurationError`."""
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid job spec: {problems}") from exc
