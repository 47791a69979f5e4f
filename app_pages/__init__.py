"""Pages of the costmodel web UI (``streamlit run app.py``); see docs/ui.md."""
