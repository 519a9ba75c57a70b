"""The Streamlit explorer: app.py is the entry (`gsop explore`); one module per panel."""
