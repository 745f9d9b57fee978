const ms=require("ms");require("http").createServer((q,r)=>r.end("ok "+ms(60000)+"\n")).listen(process.env.PORT);
