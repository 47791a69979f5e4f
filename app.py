"""costmodel web UI: ``streamlit run app.py`` (or ``make run``). A thin router: the pages live in
app_pages/, the figures in costmodel/charts.py, every number comes from the costmodel API.
See docs/ui.md."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # the pages import app_pages.common
    sys.path.insert(0, str(ROOT))

from app_pages import common

st.set_page_config(page_title="costmodel planner", page_icon=":material/query_stats:",
                   layout="wide", initial_sidebar_state="expanded")
common.init_state()

PAGES = [
    st.Page("app_pages/plan.py", title="Plan", icon=":material/query_stats:", default=True),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("app_pages/assumptions.py", title="Assumptions", icon=":material/tune:"),
    st.Page("app_pages/catalog.py", title="Catalog", icon=":material/inventory_2:"),
    st.Page("app_pages/model.py", title="Model", icon=":material/memory:"),
]

st.navigation(PAGES, position="sidebar").run()
