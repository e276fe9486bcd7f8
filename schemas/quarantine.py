"""The quarantine mart: every input row that could not be used, with a reason."""

import polars as pl

from ._base import Column, Table

#: stable reason codes; their meaning is in the data dictionary
REASONS = {
    "encoding": "the file is neither UTF-8 nor GB18030/GBK",
    "unreadable": "the file could not be opened or decompressed at all",
    "empty_file": "the file has no header row",
    "missing_columns": "the header lacks required columns (the whole file is quarantined)",
    "duplicate_column": "two header columns map to the same canonical name",
    "truncated": "the file was cut off mid-row (last line incomplete)",
    "field_count": "the row has a different number of fields from the header",
    "missing_value": "a required field is empty",
    "bad_date": "a date or timestamp field does not parse (YYYY-MM-DD, YYYYMMDD, YYYY-MM-DD HH:MM:SS) or is not a real date",
    "bad_number": "a numeric field does not parse",
    "out_of_range": "a numeric field is below its allowed minimum (e.g. multiplier < 1, negative register), "
    "or a date lies outside the accepted window (configuration: ingest.toml)",
    "malformed_line": "the line cannot be split into CSV fields: an unbalanced or misplaced double quote, "
    "a carriage return or a NUL byte inside it",
    "negative_amount": "a purchase or payment amount is zero or negative",
    "unknown_code": "a coded field holds a value outside its code list",
    "unknown_meter": "the meter is not in the archive snapshot valid on the row's date",
    "end_before_start": "an outage plan's planned end is not after its planned start",
    "notice_after_start": "an outage plan's notice was published after its planned start",
    "unknown_feeder": "the feeder is not in the archive snapshot valid on the row's date",
    "unknown_area": "the transformer area is not in the archive snapshot valid on the row's date",
    "superseded": "a later delivery of the same key disagrees; the later row wins",
    "unknown_customer": "a payment names a customer that is not in the archive snapshot valid on its date",
    "prepay_customer": "a post-paid payment of a customer who is an IC-card prepay customer on its date",
    "reversal_unknown_ref": "a reversal names no payment of the same customer paid on or before it",
    "reversal_repeated": "a reversal cancels a payment that an earlier reversal already cancelled",
    "bad_month": "a month field is not YYYY-MM",
}

QUARANTINE = Table(
    name="quarantine",
    zh="隔离数据",
    description="rows and files that could not be used, with a stable reason code; personal data masked",
    columns=(
        Column("dataset", pl.String(), "landing dataset (partition key)", "数据集"),
        Column("source_file", pl.String(), "landing file, relative to LANDING", "来源文件"),
        Column("line", pl.Int64(), "1-based physical line (header = 1); empty for a whole-file problem", "行号"),
        Column("reason", pl.String(), "stable reason code (see REASONS)", "隔离原因", codes=tuple(REASONS)),
        Column("detail", pl.String(), "what was expected and what was found, naming the column", "详情"),
        Column("raw", pl.String(), "the line's text, personal data masked", "原始内容"),
    ),
    key=("source_file", "line", "reason"),
    partition_by="dataset",
)
