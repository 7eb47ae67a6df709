"""Workbooks made with openpyxl and CSV files made with the csv module, read back."""

from __future__ import annotations

import csv
import datetime
import io

import openpyxl
import pytest

from retrieval.errors import CorruptDocumentError, EmptyDocumentError, TooLargeError
from retrieval.limits import ParseLimits
from retrieval.parsing import detect_file_type, parse_document
from retrieval.spreadsheets import ROWS_PER_SECTION


@pytest.fixture(autouse=True)
def data_dir():
    """No Django needed: this replaces the suite-wide fixture that sets Django settings."""


def workbook(rows_of_sheets: dict[str, list[list[object]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in rows_of_sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


OFFICES = {
    "Offices": [
        ["City", "Phone", "Manager", "Opened"],
        ["Berlin", "+49 30 1234", "Anna Schmidt", datetime.datetime(2019, 4, 1)],
        [None, None, None, None],
        ["上海", "+86 21 5555", "王芳", datetime.datetime(2021, 9, 15)],
    ],
    "Budget": [["Year", "Amount", None], [2024, 1500.0, "approved"]],
}


def test_each_sheet_is_a_page_and_each_row_carries_its_headers():
    document = parse_document(workbook(OFFICES), "offices.xlsx")
    assert document.file_type == "xlsx" and document.page_count == 2
    offices, budget = document.sections
    assert offices.page == 1 and offices.heading_path == ("Offices",)
    assert offices.text == (
        "City: Berlin; Phone: +49 30 1234; Manager: Anna Schmidt; Opened: 2019-04-01\n"
        "City: 上海; Phone: +86 21 5555; Manager: 王芳; Opened: 2021-09-15"
    )
    assert budget.page == 2 and budget.text == "Year: 2024; Amount: 1500; C: approved"


def test_a_long_sheet_is_cut_into_sections_of_whole_rows():
    rows = [["Ticket", "Status"]] + [[f"T-{n}", "open"] for n in range(ROWS_PER_SECTION * 2 + 5)]
    document = parse_document(workbook({"Tickets": rows}), "tickets.xlsx")
    assert [section.text.count("\n") + 1 for section in document.sections] == [50, 50, 5]
    assert document.sections[2].text.startswith(f"Ticket: T-{ROWS_PER_SECTION * 2}; Status:")


def test_a_sheet_past_the_cell_limit_is_refused():
    rows = [[f"r{row}c{column}" for column in range(10)] for row in range(200)]
    with pytest.raises(TooLargeError, match="more than 1,000 cells"):
        parse_document(workbook({"Data": rows}), "data.xlsx", limits=ParseLimits(sheet_cells=1000))


def test_an_empty_workbook_and_a_damaged_one_are_refused():
    with pytest.raises(EmptyDocumentError):
        parse_document(workbook({"Empty": []}), "empty.xlsx")
    data = workbook(OFFICES)
    with pytest.raises(CorruptDocumentError, match="damaged"):
        parse_document(data[:-200], "offices.xlsx")


def test_a_csv_file_is_one_page_of_rows_with_their_headers():
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerows([["Name", "Extension", "Room"], ["Alice", "101", "2.14"], ["Bob", "", "3.01"]])
    data = buffer.getvalue().encode("utf-8-sig")
    assert detect_file_type(data, "phones.csv") == "csv"
    document = parse_document(data, "phones.csv")
    assert document.file_type == "csv" and document.page_count == 1
    assert document.sections[0].text == (
        "Name: Alice; Extension: 101; Room: 2.14\nName: Bob; Room: 3.01"
    )


def test_a_csv_file_past_the_cell_limit_is_refused():
    data = "\n".join(",".join(["x"] * 10) for _ in range(200)).encode()
    with pytest.raises(TooLargeError, match="cells"):
        parse_document(data, "big.csv", limits=ParseLimits(sheet_cells=1000))


def test_comma_separated_text_without_a_csv_name_stays_text():
    assert detect_file_type(b"a,b\n1,2\n", "notes.txt") == "text"
