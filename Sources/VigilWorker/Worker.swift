import VigilWire
