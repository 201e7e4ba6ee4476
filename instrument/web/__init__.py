"""The web page: the instrument in a browser (``server``), what it shows of a live performance
(``live``) and of a recorded take (``take``), and the page itself (``static/``)."""
