const express = require("express");

const app = express();
const port = process.env.PORT || 5000;

app.get("/", (req, res) => {
  res.send(`${process.env.GREETING || "hello"} from express on port ${port}\n`);
});

app.listen(port, () => console.log(`listening on ${port}`));
