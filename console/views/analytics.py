import streamlit as st

st.title("analytics")
