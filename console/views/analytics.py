import streamlit as st

st.title("Analytics")
st.info("Analytics arrive with the hub's named queries.")
